"""Activations whose parameters are named as the course names them."""

from __future__ import annotations

from torch import nn


def LeakyReLU(alpha: float = 0.01) -> nn.Module:  # noqa: N802 - named like the layer it builds
    """Leaky ReLU with negative slope `alpha`."""
    return nn.LeakyReLU(negative_slope=alpha)
