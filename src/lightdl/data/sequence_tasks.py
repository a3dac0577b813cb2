"""Synthetic sequence-to-sequence problems: copy, reverse, sort, human dates -> ISO dates (and the
adding problem as sequence classification), generated from `split_seed` so every run sees the
same data.

Token tasks share one layout. Vocabulary: 0 <pad>, 1 <bos>, 2 <eos>, then the symbols. A source
x is (max source length,) ids with its padding (0) at the end; a target y is the output tokens,
then <eos>, then padding, always (target length,) long. The spec carries both lengths:
`spec.input_shape[0]` is the source length and `spec.seq_len` the target length (the number of
steps a decoder runs), so models read the decoding length from the spec and nothing repeats it.
"""

from __future__ import annotations

import datetime
import random

import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
TASKS = ("copy", "reverse", "sort", "adding", "dates", "lookahead")

MONTHS = (  # English names, whatever the process locale
    "January February March April May June July August September October November December".split()
)
DATE_CHARS = sorted(set("".join(MONTHS)) | set("0123456789 ,/-."))
FIRST_DAY, LAST_DAY = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
DATE_FORMATS = (  # each turns a date into one human spelling; 2-digit years: 00-49 -> 20xx
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",  # 3 March 2021
    lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",  # 03/03/21 (day first)
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",  # March 3, 2021
    lambda d: f"{d.year}-{d.month}-{d.day}",  # 2021-3-3
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day} {d.year}",  # Mar 3 2021
    lambda d: f"{d.day}.{d.month}.{d.year}",  # 3.3.2021
)
DATE_TARGET = 10  # "2021-03-03"


def lookahead_problem(
    n: int, length: int, shift: int, symbols: int, generator: torch.Generator
) -> Split:
    """(x (n, length), y (n, length)): per-step labels y_t = x_{t+shift}, padding where t + shift
    runs past the end. A one-way RNN reading x_t cannot know x_{t+shift} yet: it needs its output
    delayed by at least `shift` steps (model.delay)."""
    x = torch.randint(3, 3 + symbols, (n, length), generator=generator)
    y = torch.full_like(x, PAD_ID)
    y[:, : length - shift] = x[:, shift:]
    return x, y


def symbol_problem(
    task: str, n: int, min_length: int, max_length: int, symbols: int, generator: torch.Generator
) -> Split:
    """(x (n, max_length), y (n, max_length + 1)) for copy, reverse or sort, all vectorised.

    Source lengths are uniform in [min_length, max_length]; symbols are ids 3 .. 3 + symbols - 1.
    """
    length = torch.randint(min_length, max_length + 1, (n,), generator=generator)
    steps = torch.arange(max_length)
    inside = steps < length[:, None]
    x = torch.randint(3, 3 + symbols, (n, max_length), generator=generator) * inside
    if task == "copy":
        out = x
    elif task == "reverse":  # position t reads source position length - 1 - t
        out = x.gather(1, (length[:, None] - 1 - steps).clamp(min=0)) * inside
    else:  # sort: padding sorts last when it counts as larger than every symbol
        big = x.masked_fill(~inside, 3 + symbols)
        out = big.sort(dim=1).values * inside
    y = torch.zeros(n, max_length + 1, dtype=torch.int64)
    y[:, :max_length] = out
    y.scatter_(1, length[:, None], EOS_ID)
    return x, y


def date_strings(n: int, seed: int) -> list[tuple[str, str]]:
    """n (human spelling, ISO date) pairs: uniform days in 1950-2049, uniform formats."""
    rng = random.Random(seed)
    span = LAST_DAY.toordinal() - FIRST_DAY.toordinal()
    pairs = []
    for _ in range(n):
        day = datetime.date.fromordinal(FIRST_DAY.toordinal() + rng.randint(0, span))
        pairs.append((rng.choice(DATE_FORMATS)(day), day.isoformat()))
    return pairs


def encode_chars(texts: list[str], length: int, stoi: dict[str, int], eos: bool) -> torch.Tensor:
    """(len(texts), length) char ids, <eos> after each text when `eos`, padding after that."""
    out = torch.zeros(len(texts), length, dtype=torch.int64)
    for i, text in enumerate(texts):
        ids = [stoi[c] for c in text] + ([EOS_ID] if eos else [])
        out[i, : len(ids)] = torch.tensor(ids)
    return out


class SequenceTasks(InMemoryDataModule):
    """One synthetic problem, chosen by `task`, with train/val/test splits of the given sizes.

    copy: y = x. reverse: y = x backwards. sort: y = x's symbols in increasing id order.
    (Each with source lengths uniform in [min_length, max_length] over `vocab_size` symbols.)
    dates: x = a date written one of six ways ("3 March 2021", "03/03/21", "March 3, 2021",
    "2021-3-3", "Mar 3 2021", "3.3.2021"), y = "2021-03-03", character by character; the
    vocabulary is the fixed character set, so vocab_size, min_length and max_length do not apply.
    adding: the adding problem of length max_length (lightdl.data.adding), a sequence
    classification task with 19 classes, not seq2seq.
    """

    num_classes = 19  # replaced per instance for token tasks
    kind = "tokens"

    def __init__(
        self,
        task: str = "reverse",
        min_length: int = 3,
        max_length: int = 10,
        vocab_size: int = 10,
        shift: int = 2,
        train_size: int = 5000,
        val_size: int = 500,
        test_size: int = 500,
        **kwargs,
    ) -> None:
        if task not in TASKS:
            raise ConfigError(f"data.task must be one of {', '.join(TASKS)}, got '{task}'.")
        for key, value in (("train_size", train_size), ("val_size", val_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key} must be an integer >= 1, got {value!r}.")
        if not isinstance(test_size, int) or test_size < 1:
            raise ConfigError(f"data.test_size must be an integer >= 1, got {test_size!r}.")
        if not (isinstance(min_length, int) and isinstance(max_length, int) and min_length >= 1):
            raise ConfigError(f"data.min_length must be an integer >= 1, got {min_length!r}.")
        if max_length < min_length or (task == "adding" and max_length < 2):
            raise ConfigError(
                f"data.max_length must be >= data.min_length (and >= 2 for adding), "
                f"got min_length={min_length}, max_length={max_length}."
            )
        if task == "lookahead" and not (isinstance(shift, int) and 0 <= shift < max_length):
            raise ConfigError(
                f"data.shift must be an integer in [0, data.max_length), got {shift!r}."
            )
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ConfigError(f"data.vocab_size must be an integer >= 1, got {vocab_size!r}.")
        if task != "adding":
            for key in ("label_noise", "classes", "train_per_class"):
                if kwargs.get(key):
                    raise ConfigError(
                        f"data.{key} applies to class labels, but data.task={task} has output "
                        "sequences as targets; leave it unset."
                    )
        super().__init__(val_size=val_size, **kwargs)
        self.task, self.min_length, self.max_length = task, min_length, max_length
        self.symbols = vocab_size
        self.shift = shift
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        if task == "adding":
            self.kind, self.num_classes = "sequence", 19
            self.itos: tuple[str, ...] = ()
        elif task == "dates":
            self.itos = SPECIALS + tuple(DATE_CHARS)
        else:
            self.itos = SPECIALS + tuple(str(i) for i in range(vocab_size))
        if task != "adding":
            self.num_classes = len(self.itos)

    def load(self) -> dict[str, Split]:
        seeds = {"train": 0, "val": 1, "test": 2}  # each split from its own stream
        if self.task == "dates":
            return self._dates(seeds)
        splits = {}
        for split, n in self.sizes.items():
            generator = torch.Generator().manual_seed(self.split_seed * 1000 + seeds[split])
            if self.task == "adding":
                from lightdl.data.adding import adding_problem

                splits[split] = adding_problem(n, self.max_length, generator)
            elif self.task == "lookahead":
                splits[split] = lookahead_problem(
                    n, self.max_length, self.shift, self.symbols, generator
                )
            else:
                splits[split] = symbol_problem(
                    self.task, n, self.min_length, self.max_length, self.symbols, generator
                )
        return splits

    def _dates(self, seeds: dict[str, int]) -> dict[str, Split]:
        pairs = {
            split: date_strings(n, self.split_seed * 1000 + seeds[split])
            for split, n in self.sizes.items()
        }
        source_len = max(len(h) for found in pairs.values() for h, _ in found)
        stoi = {c: i for i, c in enumerate(self.itos)}
        return {
            split: (
                encode_chars([h for h, _ in found], source_len, stoi, eos=False),
                encode_chars([iso for _, iso in found], DATE_TARGET + 1, stoi, eos=True),
            )
            for split, found in pairs.items()
        }

    @property
    def spec(self) -> DataSpec:
        self.setup()
        x, y = self.splits["train"]
        if self.task == "adding":
            return DataSpec(
                input_shape=tuple(x.shape[1:]),
                num_classes=19,
                kind="sequence",
                task="classification",
            )
        return DataSpec(
            input_shape=(x.shape[1],),
            num_classes=len(self.itos),
            kind="tokens",
            vocab_size=len(self.itos),
            seq_len=y.shape[1],  # the target length: decoder steps, <eos> included
            task="tagging" if self.task == "lookahead" else "seq2seq",
            pad_id=PAD_ID,
            vocab=self.itos,
        )

    def decode(self, ids: torch.Tensor) -> str:
        """The tokens of one row up to (not including) <eos> or padding, joined (space-separated
        for symbols, as they are for date characters)."""
        out = []
        for i in ids.tolist():
            if i in (PAD_ID, EOS_ID):
                break
            out.append(self.itos[i])
        return ("" if self.task == "dates" else " ").join(out)
