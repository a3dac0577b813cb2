"""Highway networks (Srivastava et al. 2015): y = T(x) * H(x) + (1 - T(x)) * x, T a sigmoid gate."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.cnn import Activation


class HighwayLayer(nn.Module):
    """H = activation(linear(x)), T = sigmoid(gate(x) + gate_bias).

    The gate bias is its own parameter (not the gate Linear's bias), so the init group, which sets
    Linear biases, leaves the negative start value alone: T ~ sigmoid(-2) ~ 0.12 carries x through.
    """

    def __init__(self, width: int, activation: Activation, gate_bias: float) -> None:
        super().__init__()
        unit = activation()
        self.transform = nn.Linear(width, width * getattr(unit, "widen", 1))
        self.act = unit
        self.gate = nn.Linear(width, width, bias=False)
        self.gate_bias = nn.Parameter(torch.full((width,), float(gate_bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x) + self.gate_bias)
        return t * self.act(self.transform(x)) + (1 - t) * x


class Highway(nn.Sequential):
    """Flatten -> linear to `width` -> activation -> `layers` highway layers (-> dropout) -> linear."""

    def __init__(
        self,
        spec: DataSpec,
        width: int = 64,
        layers: int = 10,
        gate_bias: float = -2.0,
        activation: Activation = nn.ReLU,
        dropout: float = 0.0,
    ) -> None:
        if width < 1 or layers < 0:
            raise ConfigError(
                f"model.width must be >= 1 and model.layers >= 0, got {width}, {layers}."
            )
        unit = activation()
        stack: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(spec.input_dim, width * getattr(unit, "widen", 1)),
            unit,
        ]
        for _ in range(layers):
            stack.append(HighwayLayer(width, activation, gate_bias))
            if dropout > 0:
                stack.append(nn.Dropout(dropout))
        stack.append(nn.Linear(width, spec.num_classes))
        super().__init__(*stack)
