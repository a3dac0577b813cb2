"""TextTopics: short-text classification, which fortunes file a fortune comes from (offline), or
IMDB review sentiment from a local aclImdb copy."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.files import DataFileError, decode_utf8, read_bytes
from lightdl.data.spec import DataSpec
from lightdl.data.text import FORTUNES_DIR, Vocab, pad, read_fortunes, words
from lightdl.errors import ConfigError

SOURCES = ("fortunes", "imdb")
# fortunes files a bag of embeddings tells apart well above chance, about 150 fortunes each
DEFAULT_TOPICS = ("computers", "love", "politics", "sports", "startrek")
IMDB_LABELS = ("neg", "pos")
MIN_PER_TOPIC = 10  # fewer cannot fill train, validation and test
Texts = list[tuple[str, int]]  # (text, label)


def read_imdb(path: str | Path, max_per_class: int | None = None) -> dict[str, Texts]:
    """{"train": [(review, label)], "test": [...]} from the aclImdb layout: train/neg, train/pos,
    test/neg, test/pos folders of one review per *.txt file; neg is label 0, pos is label 1.

    Files are read in sorted name order, at most `max_per_class` per folder. HTML line breaks
    (<br />) become spaces. A review that is unreadable or not UTF-8 is refused naming the file.
    """
    root = Path(path).expanduser() if path is not None else None
    folders = [(s, c) for s in ("train", "test") for c in IMDB_LABELS]
    if root is None or not all((root / s / c).is_dir() for s, c in folders):
        raise DataFileError(
            f"data.path={path} is not an aclImdb directory (it needs train/pos, train/neg, "
            "test/pos and test/neg folders of *.txt reviews): unpack "
            "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz and point data.path "
            "at its aclImdb folder, or use data.source=fortunes."
        )
    found: dict[str, Texts] = {"train": [], "test": []}
    for split, name in folders:
        files = sorted((root / split / name).glob("*.txt"))[:max_per_class]
        if not files:
            raise DataFileError(f"data.path={path}: {root / split / name} holds no *.txt reviews.")
        label = IMDB_LABELS.index(name)
        for file in files:
            text = decode_utf8(read_bytes(file, "data.path:", allow_empty=True), file, "data.path:")
            found[split].append((re.sub(r"<br\s*/?>", " ", text), label))
    return found


def stratified(texts: Texts, fraction: float, seed: int) -> tuple[Texts, Texts]:
    """(rest, held out): round(fraction * n) of each label's texts held out, chosen with `seed`;
    at least one and never all of a label's texts (when it has two or more)."""
    rest, held = [], []
    for label in sorted({y for _, y in texts}):
        mine = [t for t in texts if t[1] == label]
        random.Random(seed * 1000 + label).shuffle(mine)
        cut = min(max(1, round(fraction * len(mine))), len(mine) - 1)
        held += mine[:cut]
        rest += mine[cut:]
    return rest, held


class TextTopics(InMemoryDataModule):
    """Classify short texts: which of the `topics` fortunes files a fortune comes from
    (source=fortunes, offline), or whether an IMDB review is negative or positive (source=imdb,
    a local aclImdb copy at `path`).

    Texts are tokenised into words (lightdl.data.text.words); texts with no word are dropped.
    Fortunes: each file's fortunes are shuffled with split_seed and cut to max_per_topic (balanced
    classes), then val_fraction and test_fraction of each topic are held out. IMDB: the given test
    split (max_per_topic reviews of each label), val_fraction of each label carved from train.
    The vocabulary is built on the TRAINING split only (tokens seen at least min_count times, at
    most max_vocab entries with <pad>=0 and <unk>=1), so validation and test words never seen in
    training map to <unk>. Each text becomes max_length ids: truncated, or padded at the end.
    train_per_class keeps that many training texts per class, before the vocabulary is built.
    """

    kind = "tokens"

    def __init__(
        self,
        source: str = "fortunes",
        topics: list[str] | None = None,
        path: str | None = None,
        max_per_topic: int | None = 150,
        max_length: int = 64,
        min_count: int = 1,
        max_vocab: int | None = 20000,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int | str = 32,
        split_seed: int = 0,
        eval_batch_size: int = 1024,
        preprocess: Any = None,
        label_noise: float = 0.0,
        scale_lr_with_batch: bool = False,
        lr_reference_batch: int = 128,
        max_lr_scale: float | None = None,
        classes: list[int] | None = None,
        train_per_class: int | None = None,
    ) -> None:
        if classes is not None:
            raise ConfigError(
                f"data.classes={list(classes)} does not apply to data=text_topics: list the wanted "
                "fortunes files in data.topics instead."
            )
        super().__init__(
            batch_size=batch_size,
            split_seed=split_seed,
            eval_batch_size=eval_batch_size,
            preprocess=preprocess,
            label_noise=label_noise,
            scale_lr_with_batch=scale_lr_with_batch,
            lr_reference_batch=lr_reference_batch,
            max_lr_scale=max_lr_scale,
        )
        if source not in SOURCES:
            raise ConfigError(f"data.source must be one of {', '.join(SOURCES)}, got '{source}'.")
        for key, value in (("max_length", max_length), ("min_count", min_count)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"data.{key} must be an integer >= 1, got {value!r}.")
        for key, value in (
            ("max_per_topic", max_per_topic),
            ("max_vocab", max_vocab),
            ("train_per_class", train_per_class),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"data.{key} must be an integer >= 1 or null, got {value!r}.")
        if max_vocab is not None and max_vocab < 3:
            raise ConfigError(
                f"data.max_vocab must leave room for a word after <pad> and <unk>, got {max_vocab}."
            )
        if not (
            0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ConfigError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must each "
                "be in (0, 1) and leave training data (sum below 1)."
            )
        self.source = source
        self.path = path
        self.topics = list(topics) if topics is not None else list(DEFAULT_TOPICS)
        self.max_per_topic = max_per_topic
        self.max_length = max_length
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.per_class = train_per_class  # applied here, before the vocabulary, not by the base
        # the class names in label order, for reports (`classes` is the base's index subset)
        if source == "imdb":
            self.class_names = list(IMDB_LABELS)
        else:
            if len(set(self.topics)) != len(self.topics) or len(self.topics) < 2:
                raise ConfigError(
                    f"data.topics must list at least 2 distinct fortunes files, got {self.topics}."
                )
            self.class_names = list(self.topics)
        self.num_classes = len(self.class_names)
        self.vocab: Vocab | None = None

    def _fortunes(self) -> dict[str, Texts]:
        corpus = read_fortunes(FORTUNES_DIR)
        unknown = [t for t in self.topics if t not in corpus]
        if unknown:
            raise ConfigError(
                f"data.topics names {unknown}, which are not fortunes files; choose from: "
                f"{', '.join(sorted(corpus))}."
            )
        texts: Texts = []
        for label, topic in enumerate(self.topics):
            mine = [t for t in corpus[topic] if words(t)]
            random.Random(self.split_seed).shuffle(mine)
            mine = mine[: self.max_per_topic]
            if len(mine) < MIN_PER_TOPIC:
                raise ConfigError(
                    f"data.topics: the fortunes file '{topic}' holds {len(mine)} usable texts; "
                    f"each topic needs at least {MIN_PER_TOPIC}."
                )
            texts += [(t, label) for t in mine]
        rest, test = stratified(texts, self.test_fraction, self.split_seed + 1)
        train, val = stratified(rest, self.val_fraction / (1 - self.test_fraction), self.split_seed)
        return {"train": train, "val": val, "test": test}

    def _imdb(self) -> dict[str, Texts]:
        found = read_imdb(self.path, self.max_per_topic)
        keep = [(t, y) for t, y in found["train"] if words(t)]
        train, val = stratified(keep, self.val_fraction, self.split_seed)
        return {"train": train, "val": val, "test": [(t, y) for t, y in found["test"] if words(t)]}

    def _few(self, texts: Texts) -> Texts:
        """train_per_class texts of each class, chosen with split_seed."""
        picked = []
        for label in range(self.num_classes):
            mine = [t for t in texts if t[1] == label]
            random.Random(self.split_seed + 4).shuffle(mine)
            picked += mine[: self.per_class]
        return picked

    def load(self) -> dict[str, Split]:
        texts = self._imdb() if self.source == "imdb" else self._fortunes()
        if self.per_class is not None:
            texts["train"] = self._few(texts["train"])
        tokens = {k: [words(t) for t, _ in v] for k, v in texts.items()}
        self.vocab = Vocab(
            (w for seq in tokens["train"] for w in seq),
            min_count=self.min_count,
            max_size=self.max_vocab,
        )
        return {
            k: (
                pad([self.vocab.encode(seq) for seq in tokens[k]], self.max_length),
                torch.tensor([y for _, y in texts[k]], dtype=torch.int64),
            )
            for k in texts
        }

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(
            input_shape=(self.max_length,),
            num_classes=self.num_classes,
            kind="tokens",
            vocab_size=len(self.vocab),
            seq_len=self.max_length,
            task="classification",
            vocab=tuple(self.vocab.itos),
        )
