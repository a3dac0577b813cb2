"""Which modules are layers and activations, and forward hooks on them that come off together.

Shared by the histograms and dead_units callbacks: both look at module outputs by the module's
path in the LightningModule (`net.2`), and both attach hooks only for the passes they watch, so a
run without them (or a step they do not sample) runs with no hooks at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

# modules whose output is the output of an activation function
ACTIVATION_MODULES = ("torch.nn.modules.activation", "lightdl.nn.activations")
# outputs > 0 exactly where the input is > 0: "active" for these means a positive input
RELU_FAMILY = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
)
WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def is_activation(module: nn.Module) -> bool:
    """An activation-function module (ReLU, Sigmoid, lightdl's Step and Maxout...), not
    MultiheadAttention, which lives in the same torch module but is a layer."""
    return type(module).__module__ in ACTIVATION_MODULES and not isinstance(
        module, nn.MultiheadAttention
    )


def named_layers(
    root: nn.Module, keep: Callable[[nn.Module], bool]
) -> Iterator[tuple[str, nn.Module]]:
    """(path, module) for each module under `root` that `keep` accepts, in registration order."""
    for name, module in root.named_modules():
        if name and keep(module):
            yield name, module


def first_tensor(output) -> torch.Tensor | None:
    """A module's output tensor, or the first tensor of a tuple output; None if it has none."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, list | tuple):
        return next((t for t in output if isinstance(t, torch.Tensor)), None)
    return None


class ForwardHooks:
    """Forward hooks calling fn(name, module, output) for each named module, removed together."""

    def __init__(self) -> None:
        self._handles: list = []

    def attach(self, modules: list[tuple[str, nn.Module]], fn: Callable) -> None:
        for name, module in modules:
            self._handles.append(
                module.register_forward_hook(lambda m, _args, out, name=name: fn(name, m, out))
            )

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __bool__(self) -> bool:
        return bool(self._handles)
