"""Weight initializations: each applies to the weights of linear, conv and recurrent layers.

`targets` picks the families a rule applies to: linear, conv, ih (recurrent input-to-hidden)
and hh (recurrent hidden-to-hidden); the others keep PyTorch's defaults. So
`init=orthogonal init.targets=[hh]` makes only the recurrent matrices orthogonal.
Recurrent weights stack one block per gate (LSTM 4, GRU 3); each block is initialised on its
own, so fans and orthogonality are those of one gate's matrix.
Biases of targeted linear and conv layers are set to `bias`; recurrent biases are left to the
model (an LSTM's forget-gate bias is set by model.forget_bias).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

_LINEAR = (nn.Linear,)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
FAMILIES = ("linear", "conv", "ih", "hh")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
Fill = Callable[[torch.Tensor], object]


def parameters(model: nn.Module) -> Iterator[tuple[str, str, torch.Tensor]]:
    """Yield (family, "weight" | "bias", tensor) for every initializable parameter of `model`.
    A layer masked by torch's pruning yields its parameter weight_orig (`weight` is then a
    product recomputed each forward, with no .grad of its own)."""
    for module in model.modules():
        family = (
            "linear"
            if isinstance(module, _LINEAR)
            else "conv"
            if isinstance(module, _CONV)
            else None
        )
        if family:
            yield family, "weight", getattr(module, "weight_orig", module.weight)
            if module.bias is not None:
                yield family, "bias", module.bias
        elif isinstance(module, nn.RNNBase):
            for name, param in module.named_parameters():
                kind, rest = name.split("_", 1)  # weight_ih_l0, bias_hh_l1_reverse, ...
                yield rest[:2], kind, param


def weights(model: nn.Module) -> list[torch.Tensor]:
    """All weight tensors (no biases): what penalties and weight decay act on."""
    return [t for _, kind, t in parameters(model) if kind == "weight"]


def _blocks(model: nn.Module) -> dict[int, int]:
    """id(recurrent weight) -> number of gate blocks stacked in it."""
    found = {}
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            for name, param in module.named_parameters():
                found[id(param)] = (
                    GATES.get(module.mode.split("_")[0], 1) if name.startswith("weight") else 1
                )
    return found


def _apply(model: nn.Module, fill: Fill, bias: float, targets: Sequence[str]) -> None:
    unknown = [t for t in targets if t not in FAMILIES]
    if unknown:
        from lightdl.errors import ConfigError

        raise ConfigError(
            f"init.targets may hold {', '.join(FAMILIES)}; got unknown {', '.join(map(str, unknown))}."
        )
    blocks = _blocks(model)
    with torch.no_grad():
        for family, kind, tensor in parameters(model):
            if family not in targets:
                continue
            if kind == "weight":
                for block in tensor.chunk(blocks.get(id(tensor), 1), dim=0):
                    fill(block)
            elif family in ("linear", "conv"):
                tensor.fill_(bias)


def fan_in(tensor: torch.Tensor) -> int:
    """Inputs feeding one output unit: columns times kernel size."""
    return tensor.shape[1] * math.prod(tensor.shape[2:])


def default(model: nn.Module) -> None:
    """Keep PyTorch's layer defaults."""


def constant(
    model: nn.Module, value: float = 0.0, bias: float = 0.0, targets: Sequence[str] = FAMILIES
) -> None:
    """Every weight equal to `value` (zeros, ones: symmetry is never broken)."""
    _apply(model, lambda w: w.fill_(value), bias, targets)


def uniform(
    model: nn.Module,
    a: float = 0.0,
    b: float = 1.0,
    bias: float = 0.0,
    targets: Sequence[str] = FAMILIES,
) -> None:
    """Weights from U[a, b)."""
    _apply(model, lambda w: nn.init.uniform_(w, a, b), bias, targets)


def fan_in_uniform(model: nn.Module, bias: float = 0.0, targets: Sequence[str] = FAMILIES) -> None:
    """Weights from U[-1/sqrt(n), 1/sqrt(n)] with n the layer's fan-in."""

    def fill(w: torch.Tensor) -> None:
        bound = 1.0 / math.sqrt(fan_in(w))
        nn.init.uniform_(w, -bound, bound)

    _apply(model, fill, bias, targets)


def normal(
    model: nn.Module,
    mean: float = 0.0,
    std: float = 0.05,
    bias: float = 0.0,
    targets: Sequence[str] = FAMILIES,
) -> None:
    """Weights from normal(mean, std) (small_random: std 0.01)."""
    _apply(model, lambda w: nn.init.normal_(w, mean, std), bias, targets)


def truncated_normal(
    model: nn.Module, std: float = 0.05, bias: float = 0.0, targets: Sequence[str] = FAMILIES
) -> None:
    """Weights from normal(0, std), redrawn when beyond 2 std."""
    _apply(model, lambda w: nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std), bias, targets)


def xavier_uniform(
    model: nn.Module, gain: float = 1.0, bias: float = 0.0, targets: Sequence[str] = FAMILIES
) -> None:
    """Glorot uniform: U(-a, a), a = gain*sqrt(6/(fan_in+fan_out)), variance 2/(fan_in+fan_out)."""
    _apply(model, lambda w: nn.init.xavier_uniform_(w, gain=gain), bias, targets)


def xavier_normal(
    model: nn.Module, gain: float = 1.0, bias: float = 0.0, targets: Sequence[str] = FAMILIES
) -> None:
    """Glorot normal: normal(0, gain*sqrt(2/(fan_in+fan_out)))."""
    _apply(model, lambda w: nn.init.xavier_normal_(w, gain=gain), bias, targets)


def he_normal(model: nn.Module, bias: float = 0.0, targets: Sequence[str] = FAMILIES) -> None:
    """He/Kaiming normal: normal(0, sqrt(2/fan_in))."""
    fill = lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")  # noqa: E731
    _apply(model, fill, bias, targets)


def he_uniform(model: nn.Module, bias: float = 0.0, targets: Sequence[str] = FAMILIES) -> None:
    """He/Kaiming uniform: U(-a, a), a = sqrt(6/fan_in), variance 2/fan_in."""
    fill = lambda w: nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")  # noqa: E731
    _apply(model, fill, bias, targets)


def lecun_normal(model: nn.Module, bias: float = 0.0, targets: Sequence[str] = FAMILIES) -> None:
    """LeCun normal: normal(0, sqrt(1/fan_in)), the init SELU's self-normalization assumes."""
    fill = lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear")  # noqa: E731
    _apply(model, fill, bias, targets)


def orthogonal(
    model: nn.Module, gain: float = 1.0, bias: float = 0.0, targets: Sequence[str] = FAMILIES
) -> None:
    """(Semi-)orthogonal matrices: W^T W = I (or W W^T = I when W is wide), times gain."""
    fill = lambda w: nn.init.orthogonal_(w.view(w.shape[0], -1), gain=gain)  # noqa: E731
    _apply(model, fill, bias, targets)
