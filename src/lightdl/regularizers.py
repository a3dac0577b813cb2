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

    def loss_kwargs(self) -> dict[str, Any]:
        return {}

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor:
        """A term added to the training loss (logged separately as train/penalty)."""
        raise NotImplementedError

    def transform_input(self, x: torch.Tensor, trainer: Any) -> torch.Tensor:
        """Change a training batch's inputs (evaluation batches are never touched)."""
        raise NotImplementedError

    def before_optimizer_step(
        self, optimizer: torch.optim.Optimizer, weights: list[torch.Tensor]
    ) -> None:
        """Act on the weights right before the optimizer applies its update."""
        raise NotImplementedError


def overrides(regularizer: Regularizer, hook: str) -> bool:
    """Whether `regularizer` implements `hook` (the base class's versions are placeholders)."""
    return getattr(type(regularizer), hook) is not getattr(Regularizer, hook)


class L2(Regularizer):
    """(lam/2) * sum of squared weights (biases excluded), added to the training loss."""

    def __init__(self, lam: float = 5e-4) -> None:
        self.lam = lam

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor:
        return 0.5 * self.lam * sum(w.pow(2).sum() for w in weights)


class L1(Regularizer):
    """lam * sum of absolute weights (biases excluded), added to the training loss: sparse weights."""

    def __init__(self, lam: float = 1e-4) -> None:
        self.lam = lam

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor:
        return self.lam * sum(w.abs().sum() for w in weights)


class Elastic(Regularizer):
    """Elastic net: l1 * sum|w| + (l2/2) * sum w^2, added to the training loss."""

    def __init__(self, l1: float = 1e-4, l2: float = 5e-4) -> None:
        self.l1, self.l2 = l1, l2

    def penalty(self, weights: list[torch.Tensor]) -> torch.Tensor:
        return sum(self.l1 * w.abs().sum() + 0.5 * self.l2 * w.pow(2).sum() for w in weights)


class WeightDecay(Regularizer):
    """Decoupled weight decay: w <- w - lr * lam * w right before each optimizer update.

    Not part of the loss, so adaptive optimizers (Adam, RMSProp) do not rescale it (AdamW's
    point). With plain SGD it is the same update as the L2 penalty (lam/2)*sum(w^2).
    Biases are not decayed, as with l1/l2.
    """

    def __init__(self, lam: float = 5e-4) -> None:
        self.lam = lam

    def before_optimizer_step(
        self, optimizer: torch.optim.Optimizer, weights: list[torch.Tensor]
    ) -> None:
        ids = {id(w) for w in weights if w.requires_grad}  # frozen weights stay as they are
        with torch.no_grad():
            for group in optimizer.param_groups:
                decayed = [p for p in group["params"] if id(p) in ids]
                if decayed:
                    torch._foreach_mul_(decayed, 1.0 - group["lr"] * self.lam)


class Dropout(Regularizer):
    """Inverted dropout with drop probability p after each hidden layer."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = p

    def model_kwargs(self) -> dict[str, Any]:
        return {"dropout": self.p}


class BatchNorm(Regularizer):
    """Batch normalization between each hidden affine layer and its activation."""

    def model_kwargs(self) -> dict[str, Any]:
        return {"batchnorm": True}


class ClipNorm(Regularizer):
    """Clip gradients so their global L2 norm is at most max_norm (Lightning's gradient clipping)."""

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = max_norm

    def trainer_kwargs(self) -> dict[str, Any]:
        return {"gradient_clip_val": self.max_norm, "gradient_clip_algorithm": "norm"}


class ClipValue(Regularizer):
    """Clip every gradient element into [-max_value, max_value] (Lightning's gradient clipping)."""

    def __init__(self, max_value: float = 0.5) -> None:
        self.max_value = max_value

    def trainer_kwargs(self) -> dict[str, Any]:
        return {"gradient_clip_val": self.max_value, "gradient_clip_algorithm": "value"}


class LabelSmoothing(Regularizer):
    """Targets become (1 - eps) one-hot + eps uniform: the loss stops rewarding certainty."""

    def __init__(self, eps: float = 0.1) -> None:
        self.eps = eps

    def loss_kwargs(self) -> dict[str, Any]:
        return {"label_smoothing": self.eps}


DECAYS = ("none", "linear", "exponential")


class InputNoise(Regularizer):
    """Gaussian noise of standard deviation `std` added to training inputs, optionally annealed.

    decay=none keeps std; linear lowers it to 0 over the run's optimizer steps; exponential
    multiplies it by decay_rate every epoch. Evaluation inputs are never noised.
    """

    def __init__(self, std: float = 0.1, decay: str = "none", decay_rate: float = 0.5) -> None:
        if decay not in DECAYS:
            from lightdl.errors import ConfigError

            raise ConfigError(
                f"regularizer.input_noise.decay must be one of {', '.join(DECAYS)}, got '{decay}'."
            )
        self.std, self.decay, self.decay_rate = std, decay, decay_rate
        self._total_steps: int | None = None

    def current_std(self, trainer: Any) -> float:
        if self.decay == "linear":
            if self._total_steps is None:  # Lightning computes this estimate; ask once per run
                self._total_steps = max(int(trainer.estimated_stepping_batches), 1)
            return self.std * max(0.0, 1.0 - trainer.global_step / self._total_steps)
        if self.decay == "exponential":
            return self.std * self.decay_rate**trainer.current_epoch
        return self.std

    def transform_input(self, x: torch.Tensor, trainer: Any) -> torch.Tensor:
        std = self.current_std(trainer)
        return x + std * torch.randn_like(x) if std > 0 else x
