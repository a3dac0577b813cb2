"""DataSpec: what a dataset tells models about its shapes, so no config ever repeats them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Shapes of one example and of the target space.

    kind: "image" (C, H, W), "vector" (D,), "tokens" (T,) integer ids in [0, vocab_size) with
    `pad_id` filling the end of shorter sequences, or "sequence" (T, F) real-valued steps.
    task: what the targets are, which picks the LightningModule (build.TASKS): "classification"
    (one class per example), "language_model" (the next token at every step), "seq2seq" (an
    output token sequence) or "skipgram" (context words of a centre word).
    vocab: the id -> token strings (tokens data), for decoding samples and queries.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    kind: str
    vocab_size: int | None = None
    seq_len: int | None = None
    task: str = "classification"
    pad_id: int = 0
    vocab: tuple[str, ...] | None = None

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)
