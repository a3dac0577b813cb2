"""DataSpec: what a dataset tells models about its shapes, so no config ever repeats them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Shapes of one example and of the target space.

    kind: "image" (C, H, W), "vector" (D,), later also "tokens" and "sequence".
    """

    input_shape: tuple[int, ...]
    num_classes: int
    kind: str
    vocab_size: int | None = None
    seq_len: int | None = None

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)
