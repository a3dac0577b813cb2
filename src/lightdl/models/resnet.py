"""Residual networks (He et al. 2015) of basic blocks: out = act(branch(x) + shortcut(x))."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.cnn import Activation, ToMap, image_map, norm_layer


def conv3(c_in: int, c_out: int, size, stride: int = 1, bias: bool = True) -> nn.Module:
    """3x3 conv with padding 1: the map keeps its size (stride 1) or becomes ceil(w/2) (stride 2)."""
    cls = nn.Conv2d if len(size) == 2 else nn.Conv1d
    return cls(c_in, c_out, 3, stride, padding=1, bias=bias)


class BasicBlock(nn.Module):
    """branch = conv3x3 -> bn -> act -> conv3x3 -> bn; shortcut = identity when the input already
    has the output's shape, else a strided 1x1 conv (+ bn) projection; then the activation."""

    def __init__(
        self, c_in: int, c_out: int, size, stride: int, activation: Activation, bn: bool
    ) -> None:
        super().__init__()
        norm = (lambda c: norm_layer(c, size)) if bn else (lambda c: nn.Identity())
        self.branch = nn.Sequential(
            conv3(c_in, c_out, size, stride, bias=not bn),
            norm(c_out),
            activation(),
            conv3(c_out, c_out, size, bias=not bn),
            norm(c_out),
        )
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            cls = nn.Conv2d if len(size) == 2 else nn.Conv1d
            self.shortcut = nn.Sequential(cls(c_in, c_out, 1, stride, bias=not bn), norm(c_out))
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class ResNet(nn.Module):
    """stem conv3x3 -> `depth` basic blocks per width in `stages` -> global average pool -> linear.

    The first block of each later stage halves the map (stride 2) while it is at least 2 pixels,
    so 8x8 digits and 2-feature vectors work. batchnorm is part of the design (default on);
    batchnorm=false removes it for comparison. dropout acts before the output layer.
    """

    def __init__(
        self,
        spec: DataSpec,
        stages: Sequence[int] = (16, 32, 64),
        depth: int = 2,
        activation: Activation = nn.ReLU,
        dropout: float = 0.0,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        if getattr(activation(), "widen", 1) != 1:
            raise ConfigError(
                "model=resnet adds each block's input to its output, which a maxout activation "
                "(fewer channels out than in) cannot follow; use relu or another elementwise one."
            )
        if not stages or depth < 1:
            raise ConfigError(
                f"model.stages must be non-empty and model.depth >= 1, got {stages}, {depth}."
            )
        channels, size = image_map(spec, "resnet")
        norm = (lambda c: norm_layer(c, size)) if batchnorm else (lambda c: nn.Identity())
        self.stem = nn.Sequential(
            ToMap((channels, *size)),
            conv3(channels, stages[0], size, bias=not batchnorm),
            norm(stages[0]),
            activation(),
        )
        blocks, c_in = [], stages[0]
        for i, width in enumerate(stages):
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 and min(size) >= 2 else 1
                blocks.append(BasicBlock(c_in, width, size, stride, activation, batchnorm))
                size = tuple((w + 1) // 2 for w in size) if stride == 2 else size
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        pool = nn.AdaptiveAvgPool2d(1) if len(size) == 2 else nn.AdaptiveAvgPool1d(1)
        self.head = nn.Sequential(
            pool, nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, spec.num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
