"""CIFAR-10: 32x32 colour images in 10 classes, read from the pickled "python version" batches.

Where the data comes from, in order: data.data_dir (a folder holding cifar-10-batches-py/, a folder
holding the batch files themselves, a folder holding cifar-10-python.tar.gz, or that archive
itself), then the cache folder, then a download of the archive into the cache (md5-checked through a
temporary file, then extracted with a filter that refuses absolute paths and '..').

Security: the batches are pickles, and unpickling a file can run code. Only the archive whose md5
matched the official one (downloaded or found in the cache) and files the user pointed to with
data.data_dir are read, and even those go through an unpickler that resolves only the numpy
functions that rebuild an array (and latin-1 bytes), so a tampered batch fails to load instead of
running code. The decoded arrays are cached as a plain .npz (read with allow_pickle=False), so
later loads unpickle nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np
import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.files import read_bytes
from lightdl.data.idx import download, md5
from lightdl.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = (*TRAIN_BATCHES, TEST_BATCH)
NUM_CLASSES = 10
SHAPE = (3, 32, 32)  # each row of b"data" is the R plane, then G, then B, each 32x32 row-major
_DECODED_VERSION = 1  # bump when the .npz layout changes


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only globals a pickled numpy array needs (numpy 1 and 2 names), and latin-1 bytes."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray}
    allowed[("numpy", "dtype")] = np.dtype
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{module}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("_codecs", "encode")] = _latin1_encode  # how Python 3 writes bytes in protocol <= 2
    return allowed


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    """pickle.Unpickler(encoding="bytes") that resolves numpy's array globals and nothing else."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}") from None


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can raise nearly anything; all mean "unreadable"
        cut = isinstance(exc, EOFError) or "truncated" in str(exc)
        raise DataError(
            f"{where} is not a readable CIFAR-10 batch{': it is truncated' if cut else ''} "
            f"(unpickling failed: {exc})."
        ) from exc
    if not isinstance(batch, dict):
        raise DataError(
            f"{where} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict."
        )
    return batch


def decode_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from one pickled batch, checked.

    where names the file in error messages.
    """
    batch = _unpickle(raw, where)
    if b"data" not in batch or b"labels" not in batch:
        missing = [k.decode() for k in (b"data", b"labels") if k not in batch]
        raise DataError(f"{where} is not a CIFAR-10 batch: it has no {' or '.join(missing)} entry.")
    data = np.asarray(batch[b"data"])
    row = int(np.prod(SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        raise DataError(
            f"{where} has data of shape {data.shape} and type {data.dtype}; "
            f"expected N x {row} uint8 (3 planes of 32x32 per image)."
        )
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{where} has labels that are not integers ({exc}).") from exc
    if labels.shape != (len(data),):
        raise DataError(
            f"{where} has {labels.size} labels in shape {labels.shape} for {len(data)} images."
        )
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        raise DataError(f"{where} has labels outside 0..{NUM_CLASSES - 1} (found {int(bad[0])}).")
    return data.reshape(len(data), *SHAPE), labels


# ---------------------------------------------------------------- sources: a folder or an archive


class _Source:
    """Where the six batches are read from: a folder of batch files, or a .tar.gz read in place."""

    def __init__(self, path: Path, archive: bool) -> None:
        self.path = path
        self.archive = archive

    def key(self) -> str:
        """Changes whenever the files change: resolved path, sizes and modification times."""
        files = [self.path] if self.archive else [self.path / n for n in BATCHES]
        stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        text = repr((_DECODED_VERSION, stats))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def check(self) -> None:
        """Name a missing batch file before anything is decoded."""
        if self.archive:
            return
        for name in BATCHES:
            if (self.path / name).is_dir():
                raise DataError(f"{self.path / name} is a directory, not a CIFAR-10 batch file.")
            if not (self.path / name).is_file():
                raise DataError(
                    f"{self.path / name} is missing: a CIFAR-10 folder needs {', '.join(BATCHES)}."
                )

    def read_all(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if not self.archive:
            self.check()
            decoded = {}
            for name in BATCHES:
                path = self.path / name
                decoded[name] = decode_batch(read_bytes(path), str(path))  # empty: refused
            return decoded
        try:
            with tarfile.open(self.path, "r:*") as tar:
                members = {PurePosixPath(m.name).name: m for m in tar.getmembers() if m.isfile()}
                decoded = {}
                for name in BATCHES:
                    member = members.get(name)
                    if member is None:
                        raise DataError(
                            f"{self.path} is missing the member {FOLDER}/{name}: a CIFAR-10 archive needs "
                            f"{', '.join(BATCHES)}."
                        )
                    handle = tar.extractfile(member)
                    assert handle is not None  # a regular file
                    raw, where = handle.read(), f"{self.path}:{member.name}"
                    if not raw:
                        raise DataError(f"{where} is empty.")
                    decoded[name] = decode_batch(raw, where)
                return decoded
        except EOFError as exc:
            raise DataError(
                f"{self.path} is not a readable CIFAR-10 archive: it is truncated ({exc})."
            ) from exc
        except (tarfile.TarError, OSError, zlib.error) as exc:
            raise DataError(f"{self.path} is not a readable CIFAR-10 archive ({exc}).") from exc


def _batch_folder(folder: Path) -> Path | None:
    """folder/cifar-10-batches-py, or folder itself when it holds batch files; else None."""
    if (folder / FOLDER).is_dir():
        return folder / FOLDER
    if any((folder / n).exists() for n in (*BATCHES, "batches.meta")):
        return folder
    return None


def _user_source(data_dir: str) -> _Source:
    path = Path(data_dir).expanduser()
    if path.is_file():
        return _Source(path, archive=True)
    if path.is_dir():
        folder = _batch_folder(path)
        if folder is not None:
            return _Source(folder, archive=False)
        if (path / ARCHIVE).is_file():
            return _Source(path / ARCHIVE, archive=True)
    raise DataError(
        f"data.data_dir={data_dir} does not hold CIFAR-10 (a {FOLDER}/ folder, the batch files "
        f"{', '.join(BATCHES)}, or {ARCHIVE})."
    )


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a .tar.gz into dest, refusing absolute paths, '..', links and special files."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                parts = PurePosixPath(member.name).parts
                if (
                    member.name.startswith(("/", "\\"))
                    or os.path.isabs(member.name)
                    or ".." in parts
                ):
                    raise DataError(
                        f"{archive} has an unsafe member '{member.name}' (absolute path or '..'); "
                        "refusing to extract it."
                    )
                if not (member.isfile() or member.isdir()):
                    raise DataError(
                        f"{archive} has a link or special file '{member.name}'; refusing to extract it."
                    )
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: a second, stdlib check
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - members were checked above
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(f"cannot extract {archive} ({exc}).") from exc


def _extract_into_cache(archive: Path, cache: Path) -> Path:
    """Extract the archive next to itself through a temporary folder; return the batch folder."""
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
    try:
        safe_extract(archive, tmp)
        if not (tmp / FOLDER).is_dir():
            raise DataError(
                f"{archive} has no {FOLDER}/ folder; it is not the CIFAR-10 python archive."
            )
        target = cache / FOLDER
        if target.exists():  # a partial folder (a batch deleted): replace it whole
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp / FOLDER, target)
        except OSError as exc:  # another process extracted it in the meantime
            if not all((target / n).is_file() for n in BATCHES):
                raise DataError(f"cannot extract {archive} into {target} ({exc}).") from exc
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cached_source(cache: Path, url: str, checksum: str) -> _Source:
    """The cache's extracted batches; else its archive (md5 checked) extracted; else a download."""
    folder = cache / FOLDER
    if all((folder / n).is_file() for n in BATCHES):
        return _Source(folder, archive=False)
    archive = cache / ARCHIVE
    if not (archive.is_file() and md5(archive) == checksum):
        try:
            download(url, archive, checksum)
        except (OSError, DataError) as exc:
            reason = str(getattr(exc, "reason", None) or exc).rstrip(".")
            raise DataError(
                f"CIFAR-10 not found: looked in {cache}; download from {url} failed ({reason}). "
                f"Download {ARCHIVE} yourself and pass data.data_dir=PATH (the archive or its folder)."
            ) from exc
    return _Source(_extract_into_cache(archive, cache), archive=False)


# ---------------------------------------------------------------- decoding, with a cache


def _concat(decoded: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    return {
        "train_x": np.concatenate([decoded[n][0] for n in TRAIN_BATCHES]),
        "train_y": np.concatenate([decoded[n][1] for n in TRAIN_BATCHES]),
        "test_x": np.ascontiguousarray(decoded[TEST_BATCH][0]),
        "test_y": np.ascontiguousarray(decoded[TEST_BATCH][1]),
    }


def _valid(arrays: dict[str, np.ndarray]) -> bool:
    return all(
        arrays[f"{s}_x"].dtype == np.uint8
        and arrays[f"{s}_x"].shape[1:] == SHAPE
        and arrays[f"{s}_y"].shape == (len(arrays[f"{s}_x"]),)
        for s in ("train", "test")
    )


def _read_decoded(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    except (OSError, ValueError, KeyError, EOFError, zlib.error):
        return None
    return arrays if _valid(arrays) else None


def _write_decoded(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Best effort: a cache that cannot be written only makes the next load slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass


_MEMORY: dict[str, dict[str, np.ndarray]] = {}  # key -> arrays, the most recent two sources


def _load_arrays(
    key: str, read: Callable[[], dict], decoded_path: Path | None
) -> dict[str, np.ndarray]:
    arrays = _MEMORY.get(key)
    if arrays is None and decoded_path is not None and decoded_path.is_file():
        arrays = _read_decoded(decoded_path)
    if arrays is None:
        arrays = _concat(read())
        if decoded_path is not None:
            _write_decoded(decoded_path, arrays)
    _MEMORY.pop(key, None)
    _MEMORY[key] = arrays
    while len(_MEMORY) > 2:
        _MEMORY.pop(next(iter(_MEMORY)))
    return arrays


def load_cifar10(
    data_dir: str | None, cache_dir: str | None, url: str = URL, checksum: str = MD5
) -> dict[str, np.ndarray]:
    """train_x/test_x (N, 3, 32, 32) uint8 and train_y/test_y (N,) int64, found as the module says.

    The decoded arrays are kept in memory (for the last two sources) and, when cache_dir is set, in
    cache_dir/decoded-KEY.npz, KEY changing whenever the source files do.
    """
    if data_dir is not None:
        source = _user_source(data_dir)
    elif cache_dir is not None:
        cache = Path(cache_dir).expanduser()
        cache.mkdir(parents=True, exist_ok=True)
        source = _cached_source(cache, url, checksum)
    else:
        raise DataError(
            "CIFAR-10 not found: data.data_dir and data.cache_dir are both null; set data.data_dir "
            f"to a folder holding {FOLDER}/ or {ARCHIVE}."
        )
    source.check()
    try:
        key = source.key()
    except OSError as exc:
        raise DataError(f"cannot read {source.path}: {exc.strerror or exc}.") from exc
    decoded_path = Path(cache_dir).expanduser() / f"decoded-{key}.npz" if cache_dir else None
    return _load_arrays(key, source.read_all, decoded_path)


class CIFAR10(InMemoryDataModule):
    """Krizhevsky's CIFAR-10: 60k 32x32 colour images (50k train, 10k test) in 10 classes.

    Inputs are float32 (3, 32, 32) in [0, 1] (channels R, G, B); labels int64 in 0..9. The
    validation split is carved from the 50k training images (val_size, split_seed).
    """

    num_classes = NUM_CLASSES
    kind = "image"
    url: ClassVar[str] = URL
    md5: ClassVar[str] = MD5
    class_names: ClassVar[tuple[str, ...]] = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )

    def __init__(self, data_dir: str | None = None, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.cache_dir = cache_dir

    def load(self) -> dict[str, Split]:
        arrays = load_cifar10(self.data_dir, self.cache_dir, self.url, self.md5)
        return {
            split: (
                torch.from_numpy(arrays[f"{split}_x"]).to(torch.float32).div_(255.0),
                torch.from_numpy(arrays[f"{split}_y"].astype(np.int64)),  # a copy: the cache stays
            )
            for split in ("train", "test")
        }
