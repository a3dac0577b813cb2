"""Words: (centre, context) word pairs for skip-gram word2vec, with frequent-word subsampling and
the negative-sampling distribution, built from the fortunes corpus or any text file.

Everything is vectorised torch: a corpus is one id tensor plus a document-index tensor, and the
pairs at distance d are read off the id tensor shifted by d (no per-word Python).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence

import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.batches import TensorBatches
from lightdl.data.spec import DataSpec
from lightdl.data.text import PAD, Vocab, read_fortunes, read_text, words
from lightdl.errors import ConfigError

DEFAULT_QUERIES = ("man", "love", "computer", "god", "money", "time")


def keep_probabilities(counts: torch.Tensor, t: float | None) -> torch.Tensor:
    """P(keep w) = min(1, sqrt(t / f(w))), f(w) = count(w) / total count: Mikolov et al. 2013
    ("Distributed Representations of Words and Phrases"), P(discard w) = 1 - sqrt(t / f(w)).

    (word2vec's C code keeps with sqrt(t/f) + t/f instead, which keeps a little more.) Words
    with count 0 (the padding id) get 0; t = None or 0 turns subsampling off (all 1).
    """
    counts = counts.to(torch.float64)
    if not t:
        return (counts > 0).to(torch.float64)
    freq = counts / counts.sum()
    keep = torch.sqrt(t / freq.clamp(min=1e-300)).clamp(max=1.0)
    return torch.where(counts > 0, keep, torch.zeros_like(keep))


def negative_probabilities(counts: torch.Tensor, power: float = 0.75) -> torch.Tensor:
    """P_neg(w) = count(w)^power / sum_v count(v)^power (0 for unseen ids such as padding)."""
    weights = counts.to(torch.float64).pow(power) * (counts > 0)
    return weights / weights.sum()


def subsample(
    ids: torch.Tensor, keep: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A boolean mask: each occurrence of word w is kept with probability keep[w]."""
    return torch.rand(len(ids), generator=generator, dtype=torch.float64) < keep[ids]


def skipgram_pairs(
    ids: torch.Tensor,
    docs: torch.Tensor,
    window: int,
    keep: torch.Tensor | None = None,
    shrink: bool = True,
    generator: torch.Generator | None = None,
) -> Split:
    """(centre ids, context ids) for every pair at most `window` words apart in the same document.

    keep: per-id keep probabilities; the corpus is subsampled with them first (so, as in word2vec,
    a window reaches past discarded words). shrink: each centre word draws its own window
    b ~ U{1..window} (word2vec's reduced window: near words count more), else every centre uses
    `window`. Pairs at distance d come from the id tensor and its copy shifted by d.
    """
    if keep is not None:
        kept = subsample(ids, keep, generator)
        ids, docs = ids[kept], docs[kept]
    if shrink:
        reach = torch.randint(1, window + 1, (len(ids),), generator=generator)
    else:
        reach = torch.full((len(ids),), window)
    centres, contexts = [], []
    for d in range(1, min(window, len(ids) - 1) + 1):
        same = docs[d:] == docs[:-d]  # position i and i + d lie in one document
        right = same & (reach[:-d] >= d)  # centre i, context i + d
        left = same & (reach[d:] >= d)  # centre i + d, context i
        centres += [ids[:-d][right], ids[d:][left]]
        contexts += [ids[d:][right], ids[:-d][left]]
    if not centres:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(centres), torch.cat(contexts)


class EpochPairs:
    """Training batches from a fresh subsample (and fresh reduced windows) each epoch.

    Every epoch yields the same number of pairs, `size` (the first epoch's count), so the trainer's
    batch count holds: a fresh draw with more pairs drops a random few, one with fewer repeats a
    random few (the counts differ by a fraction of a percent).
    """

    def __init__(
        self,
        make: Callable[[int], Split],
        size: int,
        batch_size: int,
        device: torch.device,
        seed: int,
        epoch_fn: Callable[[], int],
    ) -> None:
        self.make, self.size, self.batch_size = make, size, batch_size
        self.device, self.seed, self.epoch_fn = device, seed, epoch_fn

    def _batches(self, x: torch.Tensor, y: torch.Tensor) -> TensorBatches:
        return TensorBatches(x, y, self.batch_size)

    def __len__(self) -> int:
        empty = torch.empty(self.size, 0)
        return len(self._batches(empty, empty))

    def __iter__(self) -> Iterator[Split]:
        epoch = self.epoch_fn()
        x, y = self.make(epoch)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(x), generator=generator)
        order = order.repeat(math.ceil(self.size / max(len(x), 1)))[: self.size]
        order = order.to(x.device)
        x, y = x[order].to(self.device), y[order].to(self.device)
        yield from self._batches(x, y)


class Words(InMemoryDataModule):
    """Word pairs for skip-gram: the Debian fortunes (one document per fortune) or a text file
    (`path`; documents are blank-line separated paragraphs, or lines when there are few).

    Documents are split into train / val / test (val_fraction, test_fraction, seeded by
    split_seed; a fraction of 0 scores that split on the training pairs). The vocabulary is the
    training words seen at least min_count times (at most max_vocab entries, <pad> at id 0
    included); other words are dropped before windowing, as word2vec does.
    subsample_t: the frequent-word subsampling threshold (see `keep_probabilities`); null = off.
    window: the largest centre-context distance; shrink_window draws each centre's window from
    1..window. resample: draw the subsample and windows afresh each training epoch (val and test
    keep one fixed draw, so val/loss is comparable across epochs).
    negatives / neg_power: K negatives per pair from P_neg(w) ∝ count(w)^neg_power, drawn by the
    task on the device from `negative_probs`.
    query_words, analogies ([a, b, c]: a is to b as c is to ?): what the task reports at the end.
    """

    kind = "tokens"

    def __init__(
        self,
        path: str | None = None,
        min_count: int = 5,
        max_vocab: int | None = None,
        window: int = 5,
        shrink_window: bool = True,
        subsample_t: float | None = 1e-4,
        neg_power: float = 0.75,
        negatives: int = 5,
        drop_punctuation: bool = True,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        resample: bool = True,
        query_words: Sequence[str] = DEFAULT_QUERIES,
        analogies: Sequence[Sequence[str]] = (),
        batch_size: int | str = 1024,
        eval_batch_size: int = 8192,
        split_seed: int = 0,
        preprocess=None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            split_seed=split_seed,
            eval_batch_size=eval_batch_size,
            preprocess=preprocess,
        )
        self._check(
            min_count, max_vocab, window, subsample_t, negatives, val_fraction, test_fraction
        )
        self.path, self.min_count, self.max_vocab = path, min_count, max_vocab
        self.window, self.shrink_window, self.subsample_t = window, shrink_window, subsample_t
        self.neg_power, self.negatives = neg_power, negatives
        self.drop_punctuation, self.resample = drop_punctuation, resample
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.query_words = [str(w) for w in query_words]
        self.analogies = [[str(w) for w in triple] for triple in analogies]
        if any(len(triple) != 3 for triple in self.analogies):
            raise ConfigError(
                f"data.analogies must be a list of [a, b, c] word triples, got {self.analogies}."
            )

    @staticmethod
    def _check(min_count, max_vocab, window, subsample_t, negatives, val_fraction, test_fraction):
        rules = [
            ("min_count", min_count, isinstance(min_count, int) and min_count >= 1, ">= 1"),
            ("max_vocab", max_vocab, max_vocab is None or max_vocab >= 2, ">= 2 or null"),
            ("window", window, isinstance(window, int) and window >= 1, "an integer >= 1"),
            ("subsample_t", subsample_t, subsample_t is None or subsample_t >= 0, ">= 0 or null"),
            ("negatives", negatives, isinstance(negatives, int) and negatives >= 1, ">= 1"),
            ("val_fraction", val_fraction, 0 <= val_fraction < 1, "in [0, 1)"),
            ("test_fraction", test_fraction, 0 <= test_fraction < 1, "in [0, 1)"),
        ]
        for key, value, ok, rule in rules:
            if not ok:
                raise ConfigError(f"data.{key} must be {rule}, got {value!r}.")
        if val_fraction + test_fraction >= 1:
            raise ConfigError(
                f"data.val_fraction + data.test_fraction must be below 1, got "
                f"{val_fraction} + {test_fraction}."
            )

    def documents(self) -> list[list[str]]:
        """The corpus as tokenised documents (punctuation dropped when drop_punctuation)."""
        if self.path is None:
            texts = [t for fortunes in read_fortunes().values() for t in fortunes]
        else:
            text = read_text(self.path, "data.path")
            texts = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
            if len(texts) < 20:
                texts = [line for line in text.splitlines() if line.strip()]
        docs = [words(t) for t in texts]
        if self.drop_punctuation:
            docs = [[w for w in doc if w[0].isalnum()] for doc in docs]
        return [doc for doc in docs if doc]

    def _encode(self, docs: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, document index) of the in-vocabulary words of `docs`, in order."""
        encoded = [[self.vocab.stoi[w] for w in doc if w in self.vocab.stoi] for doc in docs]
        ids = torch.tensor([i for doc in encoded for i in doc], dtype=torch.int64)
        lengths = torch.tensor([len(doc) for doc in encoded], dtype=torch.int64)
        index = torch.repeat_interleave(torch.arange(len(encoded)), lengths)
        return ids, index

    def load(self) -> dict[str, Split]:
        docs = self.documents()
        order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(self.split_seed))
        n_val, n_test = round(self.val_fraction * len(docs)), round(self.test_fraction * len(docs))
        short = (self.val_fraction and not n_val) or (self.test_fraction and not n_test)
        if len(docs) - n_val - n_test < 1 or short:
            raise ConfigError(
                f"data: {len(docs)} documents are too few to hold out val_fraction="
                f"{self.val_fraction} and test_fraction={self.test_fraction}."
            )
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        parts = {k: [docs[i] for i in v.tolist()] for k, v in parts.items()}
        self.vocab = Vocab(
            (w for doc in parts["train"] for w in doc),
            specials=(PAD,),
            min_count=self.min_count,
            max_size=self.max_vocab,
        )
        if len(self.vocab) < 2:
            raise ConfigError(
                f"data.min_count={self.min_count} leaves no word in the vocabulary of this corpus."
            )
        self.counts = self.vocab.counts
        self.keep_probability = keep_probabilities(self.counts, self.subsample_t)
        self.negative_probs = negative_probabilities(self.counts, self.neg_power).to(torch.float32)
        self.corpus = {k: self._encode(v) for k, v in parts.items()}
        splits = {"train": self.pairs("train", epoch=0)}
        for name, fraction in (("val", self.val_fraction), ("test", self.test_fraction)):
            if not fraction:  # no held-out text asked for: the loss is on the training pairs
                splits[name] = splits["train"]
                continue
            splits[name] = self.pairs(name, epoch=0)
            if len(splits[name][0]) == 0:
                raise ConfigError(
                    f"data.{name}_fraction={fraction}: the held-out documents give no "
                    "(centre, context) pairs; use a larger fraction or a larger corpus."
                )
        return splits

    def pairs(self, split: str, epoch: int = 0) -> Split:
        """The (centre, context) pairs of one draw of subsampling and windows for `split`."""
        offset = {"train": 0, "val": 1_000_003, "test": 2_000_003}[split]
        generator = torch.Generator().manual_seed(self.split_seed * 7919 + offset + epoch)
        ids, docs = self.corpus[split]
        return skipgram_pairs(
            ids, docs, self.window, self.keep_probability, self.shrink_window, generator
        )

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(
            input_shape=(),
            num_classes=len(self.vocab),
            kind="tokens",
            vocab_size=len(self.vocab),
            task="skipgram",
            vocab=tuple(self.vocab.itos),
        )

    def train_batches(self):
        if not self.resample:
            return super().train_batches()
        x, _ = self.splits["train"]
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else x.device

        def make(epoch: int) -> Split:
            return self.splits["train"] if epoch == 0 else self.pairs("train", epoch)

        return EpochPairs(make, len(x), self.train_batch_size, device, self.split_seed, self._epoch)
