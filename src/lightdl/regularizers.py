"""Regularizers of three kinds: a loss penalty, a structural layer in the model, a trainer setting.

Each option of the `regularizer` group instantiates one of these; several combine (regularizer=[l2,dropout]).
"""

from __future__ import annotations

from typing import Any

import torch


class Regularizer:
    """Base: contributes model kwargs, trainer kwargs and/or a loss penalty."""

    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def trainer_kwargs(self) -> dict[str, Any]:
        return {}

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor | None:
        return None


class L2(Regularizer):
    """(lam/2) * sum of squared weights (biases excluded), added to the training loss."""

    def __init__(self, lam: float = 5e-4) -> None:
        self.lam = lam

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * self.lam * sum(w.pow(2).sum() for w in weights)


class Dropout(Regularizer):
    """Inverted dropout with drop probability p after each hidden layer."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = p

    def model_kwargs(self) -> dict[str, Any]:
        return {"dropout": self.p}


class ClipNorm(Regularizer):
    """Clip gradients so their global L2 norm is at most max_norm (Lightning's gradient clipping)."""

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = max_norm

    def trainer_kwargs(self) -> dict[str, Any]:
        return {"gradient_clip_val": self.max_norm, "gradient_clip_algorithm": "norm"}
