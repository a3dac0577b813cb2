"""Weight initializations: each applies to the weights of linear, conv and recurrent layers.

Biases are set to `bias` (0 unless the option says otherwise); `default` keeps PyTorch's own.
Recurrent input-to-hidden (weight_ih) and hidden-to-hidden (weight_hh) weights are both weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)


def weights_and_biases(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ("weight" | "bias", tensor) for every initializable layer of `model`."""
    for module in model.modules():
        if isinstance(module, _LAYERS):
            yield "weight", module.weight
            if module.bias is not None:
                yield "bias", module.bias
        elif isinstance(module, nn.RNNBase):
            for name, param in module.named_parameters():
                yield ("weight" if name.startswith("weight") else "bias"), param


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [t for kind, t in weights_and_biases(model) if kind == "weight"]


def _apply(model: nn.Module, fill: Callable[[torch.Tensor], object], bias: float) -> None:
    with torch.no_grad():
        for kind, tensor in weights_and_biases(model):
            if kind == "weight":
                fill(tensor)
            else:
                tensor.fill_(bias)


def default(model: nn.Module) -> None:
    """Keep PyTorch's layer defaults."""


def constant(model: nn.Module, value: float = 0.0, bias: float = 0.0) -> None:
    """Every weight equal to `value` (zeros: symmetry is never broken)."""
    _apply(model, lambda w: w.fill_(value), bias)


def normal(model: nn.Module, mean: float = 0.0, std: float = 0.05, bias: float = 0.0) -> None:
    """Weights from normal(mean, std)."""
    _apply(model, lambda w: nn.init.normal_(w, mean, std), bias)


def truncated_normal(model: nn.Module, std: float = 0.05, bias: float = 0.0) -> None:
    """Weights from normal(0, std), redrawn when beyond 2 std."""
    _apply(model, lambda w: nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std), bias)


def xavier_uniform(model: nn.Module, gain: float = 1.0, bias: float = 0.0) -> None:
    """Glorot uniform: U(-a, a), a = gain*sqrt(6/(fan_in+fan_out)), variance 2/(fan_in+fan_out)."""
    _apply(model, lambda w: nn.init.xavier_uniform_(w, gain=gain), bias)


def he_normal(model: nn.Module, bias: float = 0.0) -> None:
    """He/Kaiming normal: normal(0, sqrt(2/fan_in))."""
    _apply(model, lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"), bias)
