"""Skip-gram word2vec: an input vector v_w and an output vector u_w per word; a (centre c, context
o) pair scores u_o . v_c. The input vectors are the word vectors; queries on any vector table
(nearest neighbours, analogies) are plain functions of the table and its vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.nn.embedding import save_vectors


def _index(vocab: Sequence[str], word: str) -> int:
    try:
        return list(vocab).index(word)
    except ValueError:
        raise ConfigError(f"the word '{word}' is not in the vocabulary.") from None


def _ranked(
    vectors: torch.Tensor,
    vocab: Sequence[str],
    target: torch.Tensor,
    exclude: Sequence[int],
    k: int,
) -> list[tuple[str, float]]:
    """The k words whose vectors have the highest cosine similarity to `target`."""
    unit = F.normalize(vectors.detach().float(), dim=1)
    similarity = unit @ F.normalize(target.detach().float(), dim=0)
    similarity[list(exclude)] = float("-inf")
    best = similarity.topk(min(k, len(vocab) - len(set(exclude))))
    return [(vocab[i], float(s)) for s, i in zip(best.values, best.indices.tolist(), strict=True)]


def nearest(
    vectors: torch.Tensor, vocab: Sequence[str], word: str, k: int = 8, skip: Sequence[int] = ()
) -> list[tuple[str, float]]:
    """The k words most cosine-similar to `word` (itself excluded, and the ids in `skip`)."""
    i = _index(vocab, word)
    return _ranked(vectors, vocab, vectors[i], [i, *skip], k)


def analogy(
    vectors: torch.Tensor,
    vocab: Sequence[str],
    a: str,
    b: str,
    c: str,
    k: int = 1,
    skip: Sequence[int] = (),
) -> list[tuple[str, float]]:
    """a is to b as c is to ?: the words nearest to b - a + c (unit vectors, 3CosAdd), with the
    three query words (and the ids in `skip`) excluded."""
    ia, ib, ic = (_index(vocab, w) for w in (a, b, c))
    unit = F.normalize(vectors.detach().float(), dim=1)
    return _ranked(vectors, vocab, unit[ib] - unit[ia] + unit[ic], [ia, ib, ic, *skip], k)


class SkipGram(nn.Module):
    """Input (centre) and output (context) embedding tables over the data's vocabulary.

    Started as word2vec does: input vectors uniform in ±0.5/dim, output vectors zero.
    forward(centre ids) gives their input vectors (the word vectors); `scores` gives the pair
    scores the negative-sampling loss needs. dropout applies to the centre vectors in training;
    activation is not used (the score is a plain dot product).
    """

    tasks = ("skipgram",)
    reads_tokens = True

    def __init__(
        self,
        spec: DataSpec,
        dim: int = 100,
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spec.vocab_size is None or spec.task != "skipgram":
            raise ConfigError(
                f"model=skipgram needs word-pair data (data=words), but this data's task is "
                f"'{spec.task}'."
            )
        if not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"model.dim must be an integer >= 1, got {dim!r}.")
        self.vocab = tuple(spec.vocab or (str(i) for i in range(spec.vocab_size)))
        self.pad_id = spec.pad_id
        self.input = nn.Embedding(spec.vocab_size, dim)
        self.output = nn.Embedding(spec.vocab_size, dim)
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            self.input.weight.uniform_(-0.5 / dim, 0.5 / dim)
            self.output.weight.zero_()

    @property
    def vectors(self) -> torch.Tensor:
        """(vocab, dim) word vectors: the input table."""
        return self.input.weight

    def forward(self, centre: torch.Tensor) -> torch.Tensor:
        return self.input(centre)

    def scores(
        self, centre: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) scores u_o . v_c of the true pairs and (B, K) scores u_k . v_c of the negatives."""
        v = self.dropout(self.input(centre))  # (B, D)
        positive = (self.output(context) * v).sum(-1)
        # a broadcast product, not bmm over B tiny (K, D) matrices: 9 vs 15 ms forward and backward
        # on the CPU for B=4096, K=5, D=64
        negative = (self.output(negatives) * v.unsqueeze(1)).sum(-1)
        return positive, negative

    def nearest(self, word: str, k: int = 8) -> list[tuple[str, float]]:
        return nearest(self.vectors, self.vocab, word, k, skip=[self.pad_id])

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        return analogy(self.vectors, self.vocab, a, b, c, k, skip=[self.pad_id])

    def save(self, path: str | Path) -> None:
        """The word vectors as a file model.embedding.init can start a recurrent model from."""
        save_vectors(path, list(self.vocab), self.vectors)
