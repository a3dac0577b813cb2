"""CIFAR-10 from a tiny copy in the real on-disk format: layout, look-up order, corruption, download."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lightdl.data import cifar
from lightdl.data.cifar import CIFAR10
from lightdl.errors import DataError

PER_BATCH, N_TEST = 4, 6


def pixel_planes(index: int) -> tuple[int, int, int]:
    """Distinct R, G, B values for image number `index` (0..25)."""
    return 10 * index, 10 * index + 1, 10 * index + 2


def image_row(index: int, rng: np.random.Generator) -> np.ndarray:
    """One 3072-byte row: the R plane, then G, then B; pixel (0, 0) of each plane holds known values,
    pixel (31, 31) of each plane holds 255 - the same values, the rest is noise."""
    planes = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    for c, value in enumerate(pixel_planes(index)):
        planes[c, 0, 0] = value
        planes[c, 31, 31] = 255 - value
    return planes.reshape(-1)


def batch_bytes(rows: np.ndarray, labels: list[int], name: str) -> bytes:
    return pickle.dumps(
        {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": rows,
            b"filenames": [b"x.png"] * len(labels),
        }
    )


def write_tiny_cifar(folder: Path) -> dict[str, np.ndarray]:
    """folder/cifar-10-batches-py with 5 data batches of 4 images and a test batch of 6, as the real
    files are (pickled dicts, N x 3072 uint8 rows); returns the expected decoded arrays."""
    rng = np.random.default_rng(0)
    batches = folder / cifar.FOLDER
    batches.mkdir(parents=True)
    index = 0
    xs, ys = {"train": [], "test": []}, {"train": [], "test": []}
    for name in cifar.BATCHES:
        n = N_TEST if name == cifar.TEST_BATCH else PER_BATCH
        rows = np.stack([image_row(index + i, rng) for i in range(n)])
        labels = [(index + i) % 10 for i in range(n)]
        index += n
        (batches / name).write_bytes(batch_bytes(rows, labels, name))
        split = "test" if name == cifar.TEST_BATCH else "train"
        xs[split].append(rows.reshape(n, 3, 32, 32))
        ys[split].extend(labels)
    meta = {b"label_names": [n.encode() for n in CIFAR10.class_names], b"num_vis": 3072}
    (batches / "batches.meta").write_bytes(pickle.dumps(meta))
    return {
        "train_x": np.concatenate(xs["train"]),
        "train_y": np.array(ys["train"]),
        "test_x": np.concatenate(xs["test"]),
        "test_y": np.array(ys["test"]),
    }


def make_archive(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> str:
    """Pack folder/cifar-10-batches-py (plus extra members by name) into a .tar.gz; return its md5."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / cifar.FOLDER, arcname=cifar.FOLDER)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _fresh_memory():
    cifar._MEMORY.clear()
    yield
    cifar._MEMORY.clear()


@pytest.fixture
def tiny(tmp_path):
    expected = write_tiny_cifar(tmp_path / "tiny")
    return tmp_path / "tiny", expected


def check_module(dm: CIFAR10, expected: dict[str, np.ndarray], val_size: int) -> None:
    dm.setup()
    n_train = 5 * PER_BATCH
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [
        n_train - val_size,
        val_size,
        N_TEST,
    ]
    assert dm.spec.input_shape == (3, 32, 32) and dm.spec.num_classes == 10
    assert dm.spec.kind == "image"
    for split in ("train", "val", "test"):
        x, y = dm.splits[split]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 32, 32)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # test split: not shuffled, so row i is image i of the test batch
    x, y = dm.splits["test"]
    assert torch.equal(y, torch.from_numpy(expected["test_y"]))
    assert torch.allclose(x * 255, torch.from_numpy(expected["test_x"]).float())
    for i in range(N_TEST):
        r, g, b = pixel_planes(n_train + i)
        assert [round(float(v) * 255) for v in x[i, :, 0, 0]] == [r, g, b]
        assert [round(float(v) * 255) for v in x[i, :, 31, 31]] == [255 - r, 255 - g, 255 - b]
    # train + val together are exactly the 20 training images with their own labels
    images = torch.cat([dm.splits["train"][0], dm.splits["val"][0]])
    labels = torch.cat([dm.splits["train"][1], dm.splits["val"][1]])
    red = (images[:, 0, 0, 0] * 255).round().long()  # R at (0, 0) is 10 * index
    order = torch.argsort(red)
    assert torch.equal(red[order], torch.arange(n_train) * 10)
    assert torch.equal(labels[order], torch.from_numpy(expected["train_y"]))


@pytest.mark.parametrize("where", ["batches", "parent", "archive", "archive_parent"])
def test_reads_folder_and_archive(tmp_path, tiny, where):
    root, expected = tiny
    if where.startswith("archive"):
        (tmp_path / "packed").mkdir()
        make_archive(root, tmp_path / "packed" / cifar.ARCHIVE)
    data_dir = {
        "batches": root / cifar.FOLDER,
        "parent": root,
        "archive": tmp_path / "packed" / cifar.ARCHIVE,
        "archive_parent": tmp_path / "packed",
    }[where]
    dm = CIFAR10(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"), val_size=3)
    check_module(dm, expected, val_size=3)
    assert list((tmp_path / "cache").glob("decoded-*.npz"))  # the decoded arrays are cached


def test_validation_split_is_fixed_by_seed(tiny):
    root, _ = tiny
    first, again, other = (
        CIFAR10(data_dir=str(root), val_size=5, split_seed=seed) for seed in (1, 1, 2)
    )
    for dm in (first, again, other):
        dm.setup()
    assert torch.equal(first.splits["val"][0], again.splits["val"][0])
    assert not torch.equal(first.splits["val"][0], other.splits["val"][0])
    assert CIFAR10().val_size == 0  # the config sets 5000; the class default carves nothing


def test_second_load_uses_the_decoded_cache_not_the_pickles(tmp_path, tiny, monkeypatch):
    root, expected = tiny
    cache = tmp_path / "cache"
    CIFAR10(data_dir=str(root), cache_dir=str(cache)).setup()
    cifar._MEMORY.clear()  # as in a new process
    monkeypatch.setattr(cifar, "decode_batch", lambda *a: pytest.fail("unpickled again"))
    dm = CIFAR10(data_dir=str(root), cache_dir=str(cache))
    dm.setup()
    assert torch.equal(dm.splits["test"][1], torch.from_numpy(expected["test_y"]))
    # the in-memory copy is not changed by training-label noise in one module
    CIFAR10(data_dir=str(root), cache_dir=str(cache), label_noise=0.5).setup()
    dm2 = CIFAR10(data_dir=str(root), cache_dir=str(cache))
    dm2.setup()
    assert torch.equal(dm2.splits["train"][1], torch.from_numpy(expected["train_y"]))


def test_python2_era_pickles_with_numpy1_names_decode(tmp_path):
    """The official batches were written by Python 2 and numpy 1 (module numpy.core.multiarray)."""
    rows = np.arange(2 * 3072, dtype=np.uint32).astype(np.uint8).reshape(2, 3072)
    raw = pickle.dumps({b"data": rows, b"labels": [3, 9]}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    x, y = cifar.decode_batch(raw, "old_batch")
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 9]
    assert np.array_equal(x.reshape(2, -1), rows)
    x5, _ = cifar.decode_batch(pickle.dumps({b"data": rows, b"labels": [3, 9]}, protocol=5), "p5")
    assert np.array_equal(x5, x)


def test_changed_files_are_decoded_again(tmp_path, tiny):
    root, _ = tiny
    cache = tmp_path / "cache"
    CIFAR10(data_dir=str(root), cache_dir=str(cache)).setup()
    batch = root / cifar.FOLDER / cifar.TEST_BATCH
    batch.write_bytes(batch.read_bytes()[:50])
    with pytest.raises(DataError, match="test_batch"):
        CIFAR10(data_dir=str(root), cache_dir=str(cache)).setup()


def one_sentence(text: str) -> bool:
    return text.count(". ") == 0 and text.endswith(".") and "\n" not in text


def corrupt_truncated(folder: Path) -> str:
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    return "data_batch_2"


def corrupt_length(folder: Path) -> str:
    rows = np.zeros((4, 3000), dtype=np.uint8)
    (folder / "data_batch_4").write_bytes(batch_bytes(rows, [0, 1, 2, 3], "x"))
    return "data_batch_4"


def corrupt_label(folder: Path) -> str:
    rows = np.zeros((4, 3072), dtype=np.uint8)
    (folder / "test_batch").write_bytes(batch_bytes(rows, [0, 1, 12, 3], "x"))
    return "test_batch"


def corrupt_missing(folder: Path) -> str:
    (folder / "data_batch_3").unlink()
    return "data_batch_3"


def corrupt_label_count(folder: Path) -> str:
    rows = np.zeros((4, 3072), dtype=np.uint8)
    (folder / "data_batch_1").write_bytes(batch_bytes(rows, [0, 1, 2], "x"))
    return "data_batch_1"


def corrupt_code(folder: Path) -> str:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_5").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    return "data_batch_5"


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (corrupt_truncated, "not a readable CIFAR-10 batch"),
        (corrupt_length, r"shape \(4, 3000\)"),
        (corrupt_label, r"labels outside 0\.\.9 \(found 12\)"),
        (corrupt_missing, "is missing"),
        (corrupt_label_count, "3 labels"),
        (corrupt_code, "refusing global builtins.print"),
    ],
    ids=["truncated", "length", "label", "missing", "label_count", "code"],
)
@pytest.mark.parametrize("packed", [False, True], ids=["folder", "archive"])
def test_corrupt_batches_are_one_sentence_naming_the_file(tmp_path, tiny, corrupt, message, packed):
    root, _ = tiny
    name = corrupt(root / cifar.FOLDER)
    data_dir = root
    if packed:
        data_dir = tmp_path / cifar.ARCHIVE
        make_archive(root, data_dir)
    with pytest.raises(DataError, match=message) as err:
        CIFAR10(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache")).setup()
    text = str(err.value)
    assert name in text and str(data_dir) in text
    assert one_sentence(text), text
    assert not list((tmp_path / "cache").glob("decoded-*"))


def test_data_dir_without_cifar_names_it(tmp_path):
    with pytest.raises(DataError, match="does not hold CIFAR-10") as err:
        CIFAR10(data_dir=str(tmp_path)).setup()
    assert str(tmp_path) in str(err.value) and one_sentence(str(err.value))


def test_not_an_archive_is_a_data_error(tmp_path):
    bad = tmp_path / cifar.ARCHIVE
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DataError, match="not a readable CIFAR-10 archive") as err:
        CIFAR10(data_dir=str(bad)).setup()
    assert str(bad) in str(err.value)


def serve(monkeypatch, archive: Path, checksum: str) -> None:
    monkeypatch.setattr(CIFAR10, "url", archive.resolve().as_uri())
    monkeypatch.setattr(CIFAR10, "md5", checksum)


def test_download_verifies_extracts_and_caches(tmp_path, tiny, monkeypatch):
    root, expected = tiny
    (tmp_path / "mirror").mkdir()
    archive = tmp_path / "mirror" / cifar.ARCHIVE
    serve(monkeypatch, archive, make_archive(root, archive))
    cache = tmp_path / "cache"
    check_module(CIFAR10(cache_dir=str(cache), val_size=2), expected, val_size=2)
    assert (cache / cifar.ARCHIVE).read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in (cache / cifar.FOLDER).iterdir()) == sorted(
        [*cifar.BATCHES, "batches.meta"]
    )
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    # a second run finds the extracted cache and never downloads
    cifar._MEMORY.clear()
    archive.unlink()
    check_module(CIFAR10(cache_dir=str(cache), val_size=2), expected, val_size=2)


def test_cached_archive_is_extracted_without_download(tmp_path, tiny, monkeypatch):
    root, expected = tiny
    cache = tmp_path / "cache"
    cache.mkdir()
    serve(monkeypatch, tmp_path / "nowhere.tar.gz", make_archive(root, cache / cifar.ARCHIVE))
    check_module(CIFAR10(cache_dir=str(cache), val_size=2), expected, val_size=2)


def test_wrong_md5_keeps_nothing(tmp_path, tiny, monkeypatch):
    root, _ = tiny
    archive = tmp_path / cifar.ARCHIVE
    make_archive(root, archive)
    serve(monkeypatch, archive, "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="md5") as err:
        CIFAR10(cache_dir=str(cache)).setup()
    text = str(err.value)
    assert str(cache) in text and "data.data_dir" in text and "\n" not in text
    assert not any(cache.iterdir())


def test_unreachable_download_says_where_it_looked(tmp_path, monkeypatch):
    serve(monkeypatch, tmp_path / "absent.tar.gz", "0" * 32)
    with pytest.raises(DataError, match="CIFAR-10 not found") as err:
        CIFAR10(cache_dir=str(tmp_path / "cache")).setup()
    assert str(tmp_path / "cache") in str(err.value)


@pytest.mark.parametrize("member", ["../evil", "/tmp/lightdl-evil-absolute", "a/../../evil"])
def test_unsafe_archive_member_is_refused(tmp_path, tiny, monkeypatch, member):
    root, _ = tiny
    (tmp_path / "mirror").mkdir()
    archive = tmp_path / "mirror" / cifar.ARCHIVE
    serve(monkeypatch, archive, make_archive(root, archive, extra={member: b"owned"}))
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(DataError, match="unsafe member") as err:
        CIFAR10(cache_dir=str(cache)).setup()
    assert member in str(err.value)
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/lightdl-evil-absolute").exists()
    assert not (cache / cifar.FOLDER).exists()


def test_symlink_member_is_refused(tmp_path, tiny):
    root, _ = tiny
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"{cifar.FOLDER}/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="link or special file"):
        cifar.safe_extract(archive, tmp_path / "out")


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_models_train_one_step_on_cifar10(tmp_path, tiny, model):
    from conftest import fit_net

    root, _ = tiny
    net, trainer = fit_net(
        tmp_path,
        "data=cifar10",
        f"model={model}",
        f"data.data_dir={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.val_size=2",
        "data.batch_size=6",
        "trainer.limit_train_batches=1",
        epochs=1,
    )
    assert trainer.global_step == 1
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
