"""Spatial transformer network (Jaderberg et al. 2015): a learned affine warp in front of a classifier.

A small localisation net looks at the image and predicts the 6 parameters of an affine map
theta; F.affine_grid and F.grid_sample resample the image through it (bilinear, zero outside);
the classifier sees the warped image. The transform is learned from the classification loss
alone, and starts as exactly the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

Activation = Callable[[], nn.Module]
CLASSIFIERS = ("simple", "mlp")
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def conv_stack(
    channels: int, widths: Sequence[int], activation: Activation, size: tuple[int, int]
) -> tuple[nn.Sequential, int]:
    """Per width: 3x3 conv (padding 1) -> activation -> 2x2 max-pool while the map is >= 4 wide.

    Returns the stack (ending in a flatten) and the number of features it outputs.
    """
    layers: list[nn.Module] = []
    height, width = size
    for out in widths:
        unit = activation()
        layers += [nn.Conv2d(channels, out * getattr(unit, "widen", 1), 3, padding=1), unit]
        if min(height, width) >= 4:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        channels = out
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), channels * height * width


def dense(features: int, hidden: int, out: int, activation: Activation) -> nn.Sequential:
    """Linear -> activation -> linear."""
    unit = activation()
    return nn.Sequential(
        nn.Linear(features, hidden * getattr(unit, "widen", 1)), unit, nn.Linear(hidden, out)
    )


class AffineHead(nn.Module):
    """The localisation net's last layer: hidden features -> theta (batch, 2, 3).

    Weights start at 0 and the bias at the identity [1, 0, 0, 0, 1, 0], so every input first
    maps to the identity transform. It is deliberately not an nn.Linear: the `init` group
    re-initialises linear and conv layers after the model is built, and must not undo this.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(6, features))
        self.bias = nn.Parameter(torch.tensor(IDENTITY))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.weight, self.bias).view(-1, 2, 3)


class STN(nn.Module):
    """Localisation net -> theta -> affine_grid + grid_sample -> classifier.

    Localisation net: conv_stack(loc_channels) -> linear(loc_hidden) -> activation -> AffineHead.
    classifier=simple: conv_stack([16, 32]) -> linear(64) -> activation -> linear(classes).
    classifier=mlp: flatten -> linear(128) -> activation -> linear(classes).
    Both conv stacks pool by 2 per stage while maps are at least 4 wide (8x8 -> 4x4 -> 2x2,
    28x28 -> 14x14 -> 7x7). The activation group's unit is used throughout.
    `theta(x)` and `transform(x)` expose the predicted transform and the warped image.
    """

    def __init__(
        self,
        spec: DataSpec,
        activation: Activation = nn.ReLU,
        loc_channels: Sequence[int] = (8, 10),
        loc_hidden: int = 32,
        classifier: str = "simple",
    ) -> None:
        super().__init__()
        if spec.kind != "image" or len(spec.input_shape) != 3:
            raise ConfigError(
                f"model=stn needs image data (channels, height, width); this data set gives "
                f"{spec.kind} examples of shape {tuple(spec.input_shape)}."
            )
        if classifier not in CLASSIFIERS:
            raise ConfigError(
                f"model.classifier must be one of {', '.join(CLASSIFIERS)}, got '{classifier}'."
            )
        if loc_hidden < 1 or any(c < 1 for c in loc_channels):
            raise ConfigError("model.loc_channels and model.loc_hidden must be positive.")
        channels, height, width = spec.input_shape
        features_stack, features = conv_stack(
            channels, list(loc_channels), activation, (height, width)
        )
        unit = activation()
        self.localization = nn.Sequential(
            features_stack,
            nn.Linear(features, loc_hidden * getattr(unit, "widen", 1)),
            unit,
            AffineHead(loc_hidden),
        )
        if classifier == "simple":
            stack, features = conv_stack(channels, [16, 32], activation, (height, width))
            self.classifier = nn.Sequential(
                stack, *dense(features, 64, spec.num_classes, activation)
            )
        else:
            self.classifier = nn.Sequential(
                nn.Flatten(), *dense(math.prod(spec.input_shape), 128, spec.num_classes, activation)
            )

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine transform per example (batch, 2, 3), in affine_grid's [-1, 1] coordinates."""
        return self.localization(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The input resampled through theta(x): what the classifier sees."""
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(x))
