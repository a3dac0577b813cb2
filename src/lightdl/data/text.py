"""Text to tensors: tokenizers, a vocabulary, padding, and the Debian fortunes corpus reader."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from lightdl.data.files import read_utf8
from lightdl.errors import ConfigError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[.,!?;:]")


def words(text: str) -> list[str]:
    """Lower-cased words (with inner apostrophes) and sentence punctuation, in order."""
    return WORD.findall(text.lower())


def chars(text: str) -> list[str]:
    return list(text)


class Vocab:
    """Token <-> id. Specials come first (id 0 is padding); then tokens by falling count, ties in
    alphabetical order, so the same text always gives the same ids.

    min_count drops rarer tokens, max_size caps the vocabulary (specials included); what is left
    out maps to <unk> when <unk> is a special, and is an error otherwise.
    `counts[i]` is how often token i occurred (0 for specials).
    """

    def __init__(
        self,
        tokens: Iterable[str],
        specials: Sequence[str] = (PAD, UNK),
        min_count: int = 1,
        max_size: int | None = None,
    ) -> None:
        counted = Counter(tokens)
        kept = sorted(
            (t for t, c in counted.items() if c >= min_count and t not in specials),
            key=lambda t: (-counted[t], t),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(specials))]
        self.itos: list[str] = [*specials, *kept]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.counts = torch.tensor([0] * len(specials) + [counted[t] for t in kept])
        self.unk = self.stoi.get(UNK)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        if self.unk is None:
            return [self.stoi[t] for t in tokens]
        return [self.stoi.get(t, self.unk) for t in tokens]

    def decode(self, ids: Iterable[int], sep: str = "") -> str:
        return sep.join(self.itos[int(i)] for i in ids)


def pad(sequences: Sequence[Sequence[int]], length: int, pad_id: int = 0) -> torch.Tensor:
    """(N, length) int64: each sequence truncated to `length`, the rest filled with pad_id."""
    out = torch.full((len(sequences), length), pad_id, dtype=torch.int64)
    for i, seq in enumerate(sequences):
        seq = list(seq)[:length]
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
    return out


def lengths(x: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Steps before the padding of each row of a right-padded (N, T) id tensor (at least 1)."""
    return (x != pad_id).sum(dim=1).clamp(min=1)


def read_text(path: str | Path, what: str = "text file") -> str:
    """The file as UTF-8 text, or one sentence naming it and what is wrong: missing, a folder,
    unreadable, empty, truncated inside a character, or not UTF-8 (see lightdl.data.files)."""
    return read_utf8(path, what)


def fortune_files(root: str | Path = FORTUNES_DIR) -> list[Path]:
    """The plain fortune files under root (not the .dat indexes, .u8 copies or offensive set)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"the fortunes corpus is not at {root}: install the Debian package 'fortunes' "
            "(apt-get install fortunes, which `make setup` does) or set data.path to a text file."
        )
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.suffix)
    if not files:
        raise ConfigError(f"{root} holds no fortune files.")
    return files


def read_fortunes(root: str | Path = FORTUNES_DIR) -> dict[str, list[str]]:
    """file name -> its fortunes: each file holds texts separated by lines with a single '%'."""
    found = {}
    for path in fortune_files(root):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found[path.name] = [f.strip() for f in re.split(r"^%$", text, flags=re.M) if f.strip()]
    return found
