"""Reading the files a config points at, with one sentence naming the file and the problem.

Every loader that reads a user's file goes through these helpers, so a missing file, a folder
where a file was expected, an unreadable file, an empty one, a truncated or non-UTF-8 text and a
download whose checksum does not match are each refused the same way: a `DataFileError` whose
message names the file and says what is wrong, which the CLI prints as `lightdl: error: ...` and
exits with code 2.

Text policy: a text file must be UTF-8. A file that is not (Latin-1, UTF-16, a gzip archive, a
binary file) is refused, naming the first bad byte and its offset, rather than decoded with
replacement characters that would silently enter the vocabulary; convert it with
`iconv -f <encoding> -t UTF-8`. A file that ends inside a multi-byte character is called
truncated. (The system fortunes corpus, not a user file, is still decoded with replacement.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lightdl.errors import ConfigError, DataError

HEX_DIGEST = {"sha256": 64, "md5": 32}


class DataFileError(DataError, ConfigError):
    """A data file named by the config is missing, unreadable or malformed.

    A DataError; also a ConfigError, which the text, embedding and predict readers raised for
    these cases before, so callers catching either keep working.
    """


def check_file(path: str | Path, what: str = "") -> Path:
    """The path (user-expanded) when it is an existing regular file; else one sentence why not."""
    path = Path(path).expanduser()
    label = f"{what} {path}".strip()
    if not path.exists():
        raise DataFileError(f"{label} does not exist.")
    if path.is_dir():
        raise DataFileError(f"{label} is a directory, not a file.")
    return path


def read_bytes(path: str | Path, what: str = "", allow_empty: bool = False) -> bytes:
    """The file's bytes; a missing, folder, unreadable or (unless allow_empty) empty file is refused."""
    path = check_file(path, what)
    label = f"{what} {path}".strip()
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise DataFileError(f"{label} is unreadable: permission denied.") from None
    except OSError as exc:
        raise DataFileError(f"{label} is unreadable ({exc.strerror or exc}).") from None
    if not raw and not allow_empty:
        raise DataFileError(f"{label} is empty.")
    return raw


def decode_utf8(raw: bytes, path: str | Path, what: str = "") -> str:
    """raw as UTF-8 text (a leading byte-order mark dropped); non-UTF-8 or binary is refused."""
    label = f"{what} {path}".strip()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.end == len(raw):
            raise DataFileError(
                f"{label} is truncated: it ends inside a UTF-8 character (offset {exc.start})."
            ) from None
        raise DataFileError(
            f"{label} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert it with iconv -f <its encoding> -t UTF-8."
        ) from None
    if "\x00" in text:
        raise DataFileError(
            f"{label} is not UTF-8 text: it holds NUL bytes (a binary or UTF-16 file)."
        )
    return text


def read_utf8(path: str | Path, what: str = "") -> str:
    """The file as UTF-8 text, refused in one sentence when missing, unreadable, empty or not UTF-8."""
    path = Path(path).expanduser()
    text = decode_utf8(read_bytes(path, what), path, what)
    if not text.strip():
        raise DataFileError(f"{what} {path} is empty.".strip())
    return text


def npy_problem(exc: BaseException) -> str:
    """What np.load's error says about a .npy file, as words for a sentence: truncated or not."""
    full = (str(exc).splitlines() or [type(exc).__name__])[0]
    reason = full.split(". ")[0].rstrip(".")  # numpy's own advice would make a second sentence
    cut = ("EOF", "could only read", "not fully written", "mmap length is greater")
    if isinstance(exc, EOFError) or any(c in full for c in cut):
        return f"truncated ({reason})"
    return f"not a readable .npy array ({reason})"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_digest_option(value: str | None, key: str, algorithm: str = "sha256") -> str | None:
    """A configured checksum, lower-cased; anything but null or a hex digest is a ConfigError."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if not re.fullmatch(rf"[0-9a-f]{{{HEX_DIGEST[algorithm]}}}", text):
        raise ConfigError(
            f"{key} must be null or a {algorithm} digest of {HEX_DIGEST[algorithm]} hex digits, "
            f"got {value!r}."
        )
    return text


def verify_digest(path: Path, expected: str, what: str = "", algorithm: str = "sha256") -> None:
    """Refuse the file when its digest is not `expected` (the message gives both digests)."""
    got = file_digest(path, algorithm)
    if got != expected:
        raise DataFileError(
            f"{what} {path} has {algorithm} {got}, but {expected} was expected: "
            "the file is corrupt or not the one the checksum names.".strip()
        )
