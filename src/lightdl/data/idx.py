"""IDX files (the MNIST family's format): a checked reader, and finding the files locally or by download."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from lightdl.data.files import read_bytes
from lightdl.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@lru_cache(maxsize=16)
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or gzip), checking its magic number, dimensions and size."""
    raw = read_bytes(path, allow_empty=True)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise DataError(
                f"cannot read {path}: it is truncated (its gzip stream ends early)."
            ) from None
        except (OSError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"cannot read {path}: it is not a valid gzip file ({exc}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} is a corrupt IDX file: truncated header.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        problem = "truncated" if len(raw) - header < expected else "too long"
        raise DataError(
            f"{path} is a corrupt IDX file: {problem}, since its header promises shape {dims} "
            f"({expected} bytes) but {len(raw) - header} bytes follow."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _find_in(folder: Path, names: list[str]) -> dict[str, Path] | None:
    """Each file by its .gz name or its uncompressed name, or None if any is missing."""
    found = {}
    for name in names:
        for candidate in (folder / name, folder / name.removesuffix(".gz")):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            return None
    return found


def download(url: str, target: Path, checksum: str, timeout: float = 30.0) -> Path:
    """Download url to target through a temporary file; keep it only if its md5 matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        got = md5(Path(tmp))
        if got != checksum:
            raise DataError(
                f"download of {url} is corrupt: md5 {got}, expected {checksum}; "
                f"{target.name} was not kept."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def locate(
    title: str,
    files: dict[str, str],
    data_dir: str | None,
    system_dirs: list[str],
    cache_dir: str | None,
    mirrors: list[str],
    hint: str,
) -> dict[str, Path]:
    """Find the IDX files: data_dir, then system folders, then the cache, then each mirror.

    files maps file name (.gz) -> md5. Returns file name -> path. Raises DataError naming every
    place tried and how to get the data when all fail.
    """
    names = list(files)
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        found = _find_in(folder, names)
        if found is None:
            missing = [n for n in names if _find_in(folder, [n]) is None]
            raise DataError(
                f"data.data_dir={data_dir} does not hold the {title} files ({', '.join(names)}): "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
                "(as .gz or uncompressed)."
            )
        return found
    places = [Path(d) for d in system_dirs] + ([Path(cache_dir).expanduser()] if cache_dir else [])
    for folder in places:
        found = _find_in(folder, names)
        if found is not None:
            return found
    errors = []
    if cache_dir:
        for mirror in mirrors:
            try:
                return {
                    name: download(f"{mirror}{name}", Path(cache_dir).expanduser() / name, md5sum)
                    for name, md5sum in files.items()
                }
            except (OSError, DataError) as exc:
                errors.append(f"{mirror} ({getattr(exc, 'reason', exc)})")
    looked = ", ".join(str(p) for p in places) or "nowhere"
    raise DataError(
        f"{title} not found: looked in {looked}; download failed from "
        f"{'; '.join(errors) or 'no mirror'}. {hint}"
    )
