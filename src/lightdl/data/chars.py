"""Chars: a character-level language-modelling corpus from any text file (fortunes offline)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.files import DataFileError, check_digest_option, file_digest, verify_digest
from lightdl.data.spec import DataSpec
from lightdl.data.text import PAD, UNK, Vocab, fortune_files, read_text
from lightdl.errors import ConfigError

DEFAULT_CACHE = Path.home() / ".cache" / "lightdl" / "data" / "chars"
WORDS = {"train": "training", "val": "validation", "test": "test"}
GUTENBERG = ("*** START OF", "*** END OF")  # the licence boilerplate around a Gutenberg e-book


def download(url: str, cache_dir: str | Path = DEFAULT_CACHE, sha256: str | None = None) -> Path:
    """The file at `url`, fetched once into `cache_dir` and reused after that.

    It is written to a temporary file in the same folder and renamed when complete, so an
    interrupted download never leaves a truncated file that later runs would take as the text.
    With `sha256`, the download must have that digest or it is refused (and deleted, so nothing
    unverified stays in the cache); a cached copy that does not match is fetched again.
    """
    name = Path(urllib.parse.urlparse(url).path).name or "download.txt"
    digest = hashlib.sha1(url.encode()).hexdigest()[:8]  # two URLs with one file name differ
    target = Path(cache_dir).expanduser() / f"{digest}-{name}"
    if target.is_file() and (sha256 is None or file_digest(target) == sha256):
        return target
    partial = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            tempfile.NamedTemporaryFile(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
            ) as out,
        ):
            partial = Path(out.name)
            while block := response.read(1 << 20):
                out.write(block)
        if sha256 is not None and (got := file_digest(partial)) != sha256:
            target.unlink(missing_ok=True)  # a stale cached copy is no better
            raise DataFileError(
                f"data.url={url}: the download has sha256 {got}, but data.sha256={sha256}; "
                f"refusing it (nothing was kept in {target.parent})."
            )
        os.replace(partial, target)
    except DataFileError:
        raise
    except (
        OSError,
        ValueError,
    ) as exc:  # URLError and timeouts are OSErrors; a bad URL is a ValueError
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"data.url={url} could not be downloaded ({reason}); check the address and the "
            "network, or (offline) set data.path to a local text file or leave both null for "
            "the fortunes corpus."
        ) from exc
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    return target


def clean(text: str) -> str:
    """Unix line ends, no byte-order mark, and a Project Gutenberg book without its licence."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    start, end = text.find(GUTENBERG[0]), text.find(GUTENBERG[1])
    if start >= 0 and end > start:
        text = text[text.index("\n", start) + 1 : end]
    return text


def fortunes_text() -> str:
    """Every Debian fortunes file, concatenated in sorted file order (separator lines kept)."""
    return "".join(p.read_bytes().decode("utf-8", errors="replace") for p in fortune_files())


class Chars(InMemoryDataModule):
    """Predict the next character of a text: x is `seq_len` characters, y the same shifted by one.

    The text is data.path, or data.url downloaded into cache_dir, or (both null) the Debian
    fortunes corpus, cut to its first `max_chars` characters. It must be UTF-8 (see
    lightdl.data.files); data.sha256, when set, is the digest the download (or data.path's file)
    must have. Its last val_fraction + test_fraction
    becomes the validation then the test text, contiguously, so no evaluated passage was seen in
    training. Each split is cut into consecutive windows: window i reads characters
    [i*seq_len, (i+1)*seq_len) and predicts [i*seq_len + 1, (i+1)*seq_len + 1], so every character
    after the first is a target exactly once. The vocabulary is the text's characters (by falling
    count) after <pad> at id 0, which never occurs in the text.
    """

    kind = "tokens"

    def __init__(
        self,
        path: str | None = None,
        url: str | None = None,
        sha256: str | None = None,
        cache_dir: str | None = None,
        max_chars: int | None = 1_000_000,
        seq_len: int = 100,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        batch_size: int | str = 64,
        split_seed: int = 0,
        eval_batch_size: int = 512,
        preprocess: Any = None,
        scale_lr_with_batch: bool = False,
        lr_reference_batch: int = 128,
        max_lr_scale: float | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            split_seed=split_seed,
            eval_batch_size=eval_batch_size,
            preprocess=preprocess,
            scale_lr_with_batch=scale_lr_with_batch,
            lr_reference_batch=lr_reference_batch,
            max_lr_scale=max_lr_scale,
        )
        if path is not None and url is not None:
            raise ConfigError(
                f"data.path={path} and data.url={url} both name the text; set only one."
            )
        if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
            raise ConfigError(f"data.seq_len must be an integer >= 1, got {seq_len!r}.")
        if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 2):
            raise ConfigError(f"data.max_chars must be null or an integer >= 2, got {max_chars!r}.")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not isinstance(value, int | float) or not 0 < value < 0.5:
                raise ConfigError(f"data.{key} must be a fraction in (0, 0.5), got {value!r}.")
        self.path, self.url = path, url
        self.sha256 = check_digest_option(sha256, "data.sha256")
        if self.sha256 is not None and path is None and url is None:
            raise ConfigError(
                "data.sha256 checks data.url's download or data.path's file, but both are null "
                "(the fortunes corpus has no single file to check); set one or drop data.sha256."
            )
        self.cache_dir = cache_dir if cache_dir is not None else DEFAULT_CACHE
        self.max_chars, self.seq_len = max_chars, seq_len
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.vocab: Vocab | None = None
        self.num_classes = 0  # the vocabulary size, known once the text is read

    def text(self) -> str:
        """The whole corpus as one string, cleaned and cut to max_chars."""
        if self.url is not None:
            file = download(self.url, self.cache_dir, self.sha256)
            text = read_text(file, f"data.url={self.url}: the file")
        elif self.path is not None:
            text = read_text(self.path, "data.path")  # missing, empty, not UTF-8: one sentence
            if self.sha256 is not None:
                verify_digest(Path(self.path).expanduser(), self.sha256, "data.path")
        else:
            text = fortunes_text()
        return clean(text)[: self.max_chars]

    def load(self) -> dict[str, Split]:
        text = self.text()
        n_val, n_test = round(len(text) * self.val_fraction), round(len(text) * self.test_fraction)
        n_train = len(text) - n_val - n_test
        # the vocabulary is the training text's: a character seen only in held-out text is <unk>
        self.vocab = Vocab(text[:n_train], specials=(PAD, UNK))
        self.num_classes = len(self.vocab)
        ids = torch.tensor(self.vocab.encode(text), dtype=torch.int64)
        parts = {
            "train": ids[:n_train],
            "val": ids[n_train : n_train + n_val],
            "test": ids[n_train + n_val :],
        }
        return {name: self._windows(name, part) for name, part in parts.items()}

    def _windows(self, name: str, ids: torch.Tensor) -> Split:
        """(x, y), each (count, seq_len): consecutive windows and the same shifted by one."""
        count = (len(ids) - 1) // self.seq_len
        if count < 1:
            larger = (
                f"a larger data.{name}_fraction"
                if name != "train"
                else "smaller data.val_fraction and data.test_fraction"
            )
            raise ConfigError(
                f"the {WORDS[name]} text has {len(ids)} characters, fewer than data.seq_len + 1 = "
                f"{self.seq_len + 1}; use a longer text, {larger} or a smaller data.seq_len."
            )
        stop = count * self.seq_len
        return ids[:stop].view(count, self.seq_len), ids[1 : stop + 1].view(count, self.seq_len)

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(
            input_shape=(self.seq_len,),
            num_classes=len(self.vocab),
            kind=self.kind,
            vocab_size=len(self.vocab),
            seq_len=self.seq_len,
            task="language_model",
            vocab=tuple(self.vocab.itos),
        )
