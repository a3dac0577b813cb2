"""Perceptron and multi-layer perceptron: stacks of fully connected layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from lightdl.data.spec import DataSpec

Activation = Callable[[], nn.Module]


class Perceptron(nn.Sequential):
    """One linear layer from the flattened input to one score per class."""

    def __init__(self, spec: DataSpec, activation: Activation | None = None, dropout: float = 0.0):
        super().__init__(nn.Flatten(), nn.Linear(spec.input_dim, spec.num_classes))


class MLP(nn.Sequential):
    """Linear -> activation (-> dropout) for each width in `hidden`, then a linear output layer."""

    def __init__(
        self,
        spec: DataSpec,
        hidden: Sequence[int] = (256, 128),
        activation: Activation = nn.ReLU,
        dropout: float = 0.0,
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = spec.input_dim
        for out in hidden:
            layers += [nn.Linear(width, out), activation()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = out
        layers.append(nn.Linear(width, spec.num_classes))
        super().__init__(*layers)
