"""Bad data files are refused in one sentence naming the file and the problem.

A table of bad files, each built in tmp_path and read by the loader the CLI uses (a datamodule's
setup, or the reader function mode=predict and model.embedding.init call). Each must raise
lightdl.errors.DataError whose message names the file and says what is wrong (the problem word
in the table), in one sentence; the CLI prints that as `lightdl: error: ...` and exits 2, which two
end-to-end runs check. Then the checksum of data.url downloads (data.sha256).

69 bad files tried across 8 loaders:
  idx (data=fashion_mnist/mnist, data.data_dir)    12
  cifar (data=cifar10, data.data_dir)              11
  chars (data=chars, data.path)                    10
  words (data=words, data.path)                     3
  imdb (data=text_topics source=imdb, data.path)    5
  npy (data=npy, data.train_x/train_y)             10
  predict (mode=predict, predict.inputs)           11
  embedding (model.embedding.init)                  7

"Unreadable" is a file opened with permission denied: chmod 000, and, since root reads such a
file anyway, `open` made to raise PermissionError for it.
"""

from __future__ import annotations

import builtins
import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import run_cli

from lightdl.data import cifar
from lightdl.data.arrays import NpyArrays
from lightdl.data.chars import Chars, download
from lightdl.data.text_topics import TextTopics
from lightdl.data.vision import FashionMNIST
from lightdl.data.words import Words
from lightdl.errors import ConfigError, DataError
from lightdl.evaluate import read_inputs
from lightdl.nn.embedding import load_vectors, save_vectors

# ---------------------------------------------------------------- bad-file builders


def cut(path: Path, keep: int) -> Path:
    """Keep the first `keep` bytes of the file (negative: drop that many from the end)."""
    raw = path.read_bytes()
    path.write_bytes(raw[:keep])
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def folder(path: Path) -> Path:
    """A directory where the file should be."""
    path.unlink()
    path.mkdir()
    return path


def missing(path: Path) -> Path:
    path.unlink()
    return path


def garbage(path: Path) -> Path:
    path.write_bytes(b"this is some text, not the expected format\n" * 10)
    return path


def unreadable(path: Path) -> Path:
    path.chmod(0)  # enough for a normal user; the `denied` fixture covers root
    return path


DENIED: set[str] = set()


@pytest.fixture(autouse=True)
def denied(monkeypatch):
    """open() of a file in DENIED raises PermissionError, as chmod 000 does for a normal user."""
    DENIED.clear()
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and os.fspath(file) in DENIED:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)
    yield
    DENIED.clear()


def deny(path: Path) -> Path:
    DENIED.add(str(path))
    return unreadable(path)


# ---------------------------------------------------------------- loaders with good files


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


IDX = {
    "train-images-idx3-ubyte": np.zeros((6, 28, 28), np.uint8),
    "train-labels-idx1-ubyte": np.arange(6, dtype=np.uint8),
    "t10k-images-idx3-ubyte": np.zeros((4, 28, 28), np.uint8),
    "t10k-labels-idx1-ubyte": np.arange(4, dtype=np.uint8),
}


def load_idx(tmp_path: Path, corrupt) -> Path:
    data = tmp_path / "mnist"
    data.mkdir()
    for name, array in IDX.items():
        (data / name).write_bytes(idx_bytes(array))
    bad = corrupt(data)
    FashionMNIST(data_dir=str(data), val_size=1).setup()
    return bad


def idx_file(change, name="train-labels-idx1-ubyte"):
    return lambda data: change(data / name)


def idx_labels(values, name="train-labels-idx1-ubyte"):
    def make(data):
        (data / name).write_bytes(idx_bytes(np.array(values, np.uint8)))
        return data / name

    return make


def idx_gzip_cut(data: Path) -> Path:
    raw = (data / "train-labels-idx1-ubyte").read_bytes()
    (data / "train-labels-idx1-ubyte").unlink()
    path = data / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(raw)[:-12])
    return path


def cifar_batch(labels: list[int]) -> bytes:
    rows = np.zeros((len(labels), 3072), np.uint8)
    return pickle.dumps({b"labels": labels, b"data": rows})


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def load_cifar(tmp_path: Path, corrupt) -> Path:
    batches = tmp_path / cifar.FOLDER
    batches.mkdir()
    for name in cifar.BATCHES:
        (batches / name).write_bytes(cifar_batch([0, 1]))
    bad = corrupt(batches)
    cifar.CIFAR10(data_dir=str(tmp_path), cache_dir=None, val_size=1).setup()
    return bad


def cifar_file(change, name="data_batch_2"):
    return lambda batches: change(batches / name)


def cifar_write(payload: bytes, name="data_batch_2"):
    def make(batches):
        (batches / name).write_bytes(payload)
        return batches / name

    return make


def cifar_archive_cut(batches: Path) -> Path:
    """Only data_dir/cifar-10-python.tar.gz, cut in half."""
    archive = batches.parent / cifar.ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname=cifar.FOLDER)
    for child in batches.iterdir():
        child.unlink()
    batches.rmdir()
    return cut(archive, archive.stat().st_size // 2)


TEXT = "It was a dark and stormy night; the rain fell in torrents. " * 40


def load_chars(tmp_path: Path, corrupt) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    bad = corrupt(path)
    Chars(path=str(bad), seq_len=8, cache_dir=str(tmp_path / "cache")).setup()
    return bad


def load_chars_sha(tmp_path: Path, corrupt) -> Path:
    path = corrupt(tmp_path / "book.txt")
    Chars(path=str(path), seq_len=8, sha256="0" * 64).setup()
    return path


def load_words(tmp_path: Path, corrupt) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    bad = corrupt(path)
    Words(path=str(bad), min_count=1).setup()
    return bad


def text_write(payload: bytes):
    def make(path):
        path.write_bytes(payload)
        return path

    return make


def load_imdb(tmp_path: Path, corrupt) -> Path:
    root = tmp_path / "aclImdb"
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                (root / split / label / f"{i}_1.txt").write_text(f"review {label} {i} fine film")
    bad = corrupt(root)
    TextTopics(source="imdb", path=str(root), val_fraction=0.25).setup()
    return bad


def imdb_review(change):
    return lambda root: change(root / "train" / "pos" / "2_1.txt")


def load_npy(tmp_path: Path, corrupt, **options) -> Path:
    np.save(tmp_path / "x.npy", np.zeros((6, 3), np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2]))
    bad = corrupt(tmp_path)
    x, y = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    NpyArrays(x, y, test_size=1, val_size=1, **options).setup()
    return bad


def npy_file(change, name="x.npy"):
    return lambda d: change(d / name)


def npy_save(array, name="y.npy"):
    def make(d):
        np.save(d / name, array)
        return d / name

    return make


IMAGE_SPEC = SimpleNamespace(input_shape=(1, 8, 8), kind="image", vocab_size=None)
TOKEN_SPEC = SimpleNamespace(input_shape=(5,), kind="tokens", vocab_size=10)


def load_predict_npy(tmp_path: Path, corrupt, spec=IMAGE_SPEC) -> Path:
    path = tmp_path / "inputs.npy"
    np.save(path, np.zeros((3, *spec.input_shape), np.float32))
    bad = corrupt(path)
    read_inputs(str(bad), spec)
    return bad


def load_predict_images(tmp_path: Path, corrupt) -> Path:
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        noise = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
        Image.fromarray(noise).save(images / name)
    bad = corrupt(images / "b.png")
    read_inputs(str(images), IMAGE_SPEC)
    return bad


def load_embedding(tmp_path: Path, corrupt) -> Path:
    path = tmp_path / "vectors.pt"
    save_vectors(path, ["a", "b", "c"], torch.randn(3, 4))
    bad = corrupt(path)
    load_vectors(bad)
    return bad


def torch_save(obj):
    def make(path):
        torch.save(obj, path)
        return path

    return make


# ---------------------------------------------------------------- the table

CASES = [
    # IDX (Fashion-MNIST, MNIST): four files in data.data_dir
    ("idx", idx_file(missing), "missing"),
    ("idx", idx_file(folder), "missing"),  # a folder of that name is not the file
    ("idx", idx_file(lambda p: cut(p, 6)), "truncated header"),
    ("idx", idx_file(lambda p: cut(p, -2)), "truncated"),
    ("idx", idx_gzip_cut, "truncated"),
    ("idx", idx_file(lambda p: (p.write_bytes(b"\x12\x34" + p.read_bytes()[2:]), p)[1]), "magic"),
    ("idx", idx_file(garbage), "magic"),
    ("idx", idx_file(empty), "empty"),
    ("idx", idx_file(deny), "permission denied"),
    ("idx", idx_labels([0, 1, 2, 12, 4, 5]), "outside 0..9"),
    ("idx", idx_labels([0, 1, 2]), "3 labels"),
    ("idx", idx_labels(np.arange(6), "train-images-idx3-ubyte"), "not images"),
    # CIFAR-10: six pickled batches in data.data_dir (or the archive)
    ("cifar", cifar_file(missing), "is missing"),
    ("cifar", cifar_file(folder), "directory"),
    ("cifar", cifar_file(lambda p: cut(p, 2)), "truncated"),
    ("cifar", cifar_file(lambda p: cut(p, -40)), "truncated"),
    ("cifar", cifar_file(garbage), "not a readable CIFAR-10 batch"),
    ("cifar", cifar_file(empty), "empty"),
    ("cifar", cifar_file(deny), "permission denied"),
    ("cifar", cifar_write(cifar_batch([0, 10])), r"outside 0..9 (found 10)"),
    ("cifar", cifar_write(pickle.dumps([1, 2, 3])), "not a dict"),
    ("cifar", cifar_write(pickle.dumps({b"labels": Evil()})), "refusing global"),
    ("cifar", cifar_archive_cut, "truncated"),
    # chars: a text file (data.path)
    ("chars", missing, "does not exist"),
    ("chars", folder, "directory"),
    ("chars", empty, "empty"),
    ("chars", text_write(b" \n\n\t\n"), "empty"),
    ("chars", deny, "permission denied"),
    ("chars", text_write(TEXT.encode() + "caf\u00e9".encode("latin-1") + b" ok"), "not UTF-8"),
    ("chars", text_write(gzip.compress(TEXT.encode())), "not UTF-8"),
    ("chars", text_write(TEXT.encode("utf-16")), "not UTF-8"),
    ("chars", text_write(TEXT.encode() + "\u00e9".encode()[:1]), "truncated"),
    ("chars_sha", lambda p: (p.write_text(TEXT), p)[1], "sha256"),
    # words: a text file (data.path), the same reader
    ("words", missing, "does not exist"),
    ("words", text_write(("\u201cquoted words\u201d " * 50).encode("cp1252")), "not UTF-8"),
    ("words", empty, "empty"),
    # text_topics source=imdb: a folder of reviews (data.path)
    ("imdb", lambda root: missing_tree(root), "not an aclImdb directory"),
    ("imdb", imdb_review(text_write("tr\u00e8s bien".encode("latin-1"))), "not UTF-8"),
    ("imdb", imdb_review(folder), "directory"),
    ("imdb", imdb_review(deny), "permission denied"),
    ("imdb", imdb_review(text_write("na\u00efve".encode()[:3])), "truncated"),
    # npy: train_x/train_y .npy files
    ("npy", npy_file(missing), "no such .npy file"),
    ("npy", npy_file(lambda p: cut(p, 20)), "truncated"),
    ("npy", npy_file(lambda p: cut(p, -8)), "truncated"),
    ("npy_mmap", npy_file(lambda p: cut(p, -8)), "truncated"),
    ("npy", npy_file(empty), "empty"),
    ("npy", npy_file(garbage), "not a readable .npy"),
    ("npy", npy_file(deny), "permission denied"),
    ("npy_3", npy_save(np.array([0, 1, 7, 0, 1, 2])), "allows 0..2"),
    ("npy", npy_save(np.array([0, 1, -1, 0, 1, 2])), "non-negative"),
    ("npy", npy_save(np.zeros(0, np.int64)), "no labels"),
    # mode=predict: predict.inputs, a .npy file or a folder of images
    ("predict", missing, "does not exist"),
    ("predict", lambda p: cut(p, 30), "truncated"),
    ("predict", lambda p: cut(p, -10), "truncated"),
    ("predict", empty, "empty"),
    ("predict", garbage, "not a readable .npy"),
    ("predict", deny, "permission denied"),
    ("predict_tokens", lambda p: (np.save(p, np.full((2, 5), 12)), p)[1], "token ids"),
    ("predict_images", lambda p: cut(p, p.stat().st_size // 2), "truncated"),
    ("predict_images", garbage, "not a PNG or JPEG"),
    ("predict_images", empty, "empty"),
    ("predict_images", folder, "directory"),
    # model.embedding.init: a vector file written by model=skipgram
    ("embedding", missing, "does not exist"),
    ("embedding", folder, "directory"),
    ("embedding", empty, "empty"),
    ("embedding", lambda p: cut(p, p.stat().st_size // 2), "truncated"),
    ("embedding", garbage, "wrong format"),
    ("embedding", torch_save({"itos": ["a"], "weights": torch.zeros(1, 4)}), "wrong format"),
    ("embedding", torch_save({"itos": ["a", "b"], "vectors": torch.zeros(3, 4)}), "2 tokens"),
]


def missing_tree(root: Path) -> Path:
    for review in (root / "test" / "neg").iterdir():
        review.unlink()
    (root / "test" / "neg").rmdir()
    return root


LOADERS = {
    "idx": load_idx,
    "cifar": load_cifar,
    "chars": load_chars,
    "chars_sha": load_chars_sha,
    "words": load_words,
    "imdb": load_imdb,
    "npy": load_npy,
    "npy_mmap": lambda tmp_path, corrupt: load_npy(tmp_path, corrupt, mmap=True),
    "npy_3": lambda tmp_path, corrupt: load_npy(tmp_path, corrupt, num_classes=3),
    "predict": load_predict_npy,
    "predict_tokens": lambda tmp_path, corrupt: load_predict_npy(tmp_path, corrupt, TOKEN_SPEC),
    "predict_images": load_predict_images,
    "embedding": load_embedding,
}


@pytest.mark.parametrize(
    ("loader", "corrupt", "word"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_a_bad_file_is_one_sentence_naming_it(tmp_path, loader, corrupt, word):
    bad: list[Path] = []

    def recording(target):
        bad.append(corrupt(target))
        return bad[-1]

    with pytest.raises(DataError) as info:
        LOADERS[loader](tmp_path, recording)
    message = str(info.value)
    assert bad, "the loader failed before the bad file was made"
    assert word in message, message
    named = bad[0]  # the file's path, or its folder's path and its name
    assert str(named) in message or (str(named.parent) in message and named.name in message)
    assert "\n" not in message and ". " not in message and message.endswith("."), message
    assert "Traceback" not in message


def test_the_table_counts_what_the_docstring_says():
    assert len(CASES) == 69
    assert len({c[0].split("_")[0] for c in CASES}) == 8


def test_a_pickle_that_would_run_code_runs_nothing(tmp_path, capfd):
    with pytest.raises(DataError, match="refusing global posix.system|refusing global os.system"):
        load_cifar(tmp_path, cifar_write(pickle.dumps({b"labels": Evil()})))
    assert "pwned" not in capfd.readouterr().out


def test_text_files_are_errors_of_both_kinds(tmp_path):
    """Text, embedding and predict readers raised ConfigError for these before: still caught."""
    with pytest.raises(ConfigError):
        load_chars(tmp_path, missing)


# ---------------------------------------------------------------- download checksums (data.sha256)


def test_a_download_with_the_right_sha256_is_kept_and_reused(tmp_path):
    import hashlib

    served = tmp_path / "served" / "book.txt"
    served.parent.mkdir()
    served.write_text(TEXT)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    first = download(served.as_uri(), cache, digest)
    assert first.read_bytes() == served.read_bytes()
    served.unlink()  # the second call reads the verified cache, no network
    assert download(served.as_uri(), cache, digest) == first
    data = Chars(url=served.as_uri(), sha256=digest.upper(), cache_dir=str(cache), seq_len=8)
    data.setup()
    assert data.num_classes > 2


def test_a_download_with_the_wrong_sha256_is_refused_and_not_cached(tmp_path):
    import hashlib

    served = tmp_path / "book.txt"
    served.write_text(TEXT)
    cache = tmp_path / "cache"
    wrong = "ab" * 32
    data = Chars(url=served.as_uri(), sha256=wrong, cache_dir=str(cache), seq_len=8)
    with pytest.raises(DataError) as info:
        data.setup()
    message = str(info.value)
    got = hashlib.sha256(served.read_bytes()).hexdigest()
    assert served.as_uri() in message and wrong in message and got in message, message
    assert "\n" not in message and message.endswith(".")
    assert not any(cache.iterdir()), "a refused download stayed in the cache"
    # a cached copy that does not match (tampered, or the checksum changed) is fetched again
    good = download(served.as_uri(), cache)
    good.write_text("tampered")
    assert download(served.as_uri(), cache, got).read_text() == TEXT


def test_a_malformed_sha256_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.sha256 must be null or a sha256 digest"):
        Chars(path=str(tmp_path / "x.txt"), sha256="abc")
    with pytest.raises(ConfigError, match="both are null"):
        Chars(sha256="0" * 64)


# ---------------------------------------------------------------- end to end: exit code 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data=chars", "model=lstm"], "is not UTF-8 text"),
        (["data=fashion_mnist"], "outside 0..9"),
    ],
    ids=["chars-latin1", "idx-labels"],
)
def test_the_cli_says_one_sentence_and_exits_2(tmp_path, args, needle):
    if args[0] == "data=chars":
        bad = tmp_path / "latin1.txt"
        bad.write_bytes("d\u00e9j\u00e0 vu ".encode("latin-1") * 100)
        args = [*args, f"data.path={bad}"]
    else:
        load = tmp_path / "mnist"
        load.mkdir()
        for name, array in IDX.items():
            (load / name).write_bytes(idx_bytes(array))
        bad = load / "t10k-labels-idx1-ubyte"
        bad.write_bytes(idx_bytes(np.array([0, 1, 200, 3], np.uint8)))
        args = [*args, f"data.data_dir={load}"]
    result = run_cli(*args, "trainer.max_epochs=1", cwd=tmp_path, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(errors) == 1, errors
    assert errors[0].startswith("lightdl: error: ") and str(bad) in errors[0], errors
    assert needle in errors[0], errors
