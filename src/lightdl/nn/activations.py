"""Activations whose parameters are named as the course names them.

Two attributes tell the models how to wire an activation module:
- `differentiable = False`: its gradient is zero almost everywhere (the Heaviside step), so it
  only works where no gradient has to flow through it (the perceptron learning rule);
- `widen = k`: it reduces k inputs to one output (maxout), so the layer before it must produce
  k times as many features.
"""

from __future__ import annotations

import torch
from torch import nn


class Step(nn.Module):
    """Heaviside step: 1 where x > 0, else 0. The perceptron's threshold unit."""

    differentiable = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)


def LeakyReLU(alpha: float = 0.01) -> nn.Module:  # noqa: N802 - named like the layer it builds
    """Leaky ReLU with negative slope `alpha`."""
    return nn.LeakyReLU(negative_slope=alpha)


def PReLU(alpha: float = 0.25) -> nn.Module:  # noqa: N802
    """Parametric ReLU: the negative slope is a parameter, initialised to `alpha` and trained."""
    return nn.PReLU(num_parameters=1, init=alpha)


def RReLU(lower: float = 1 / 8, upper: float = 1 / 3) -> nn.Module:  # noqa: N802
    """Randomized ReLU: slope ~ U(lower, upper) per element in training, (lower+upper)/2 at eval."""
    return nn.RReLU(lower=lower, upper=upper)


def ELU(alpha: float = 1.0) -> nn.Module:  # noqa: N802
    """Exponential linear unit: x for x > 0, alpha*(exp(x)-1) otherwise."""
    return nn.ELU(alpha=alpha)


class Maxout(nn.Module):
    """Maxout: the maximum of k linear pieces. The layer before produces k features per unit.

    Features (dim 1, so channels for conv maps) are grouped as k consecutive pieces per unit.
    With k=2 and one piece fixed at zero it is the ReLU.
    """

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        if not isinstance(k, int) or k < 1:
            from lightdl.errors import ConfigError

            raise ConfigError(f"activation.k must be an integer >= 1, got {k!r}.")
        self.k = self.widen = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (-1, self.k)).amax(dim=2)

    def extra_repr(self) -> str:
        return f"k={self.k}"
