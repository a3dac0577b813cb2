"""Convolutional networks: blocks of conv -> (batchnorm) -> activation -> pool, then a dense head.

Images (N, C, H, W) use 2-D layers; vector data (N, D) is read as a one-channel signal (N, 1, D)
by 1-D layers. The helpers here (`feature_map`, `conv`, `pool`, `norm_layer`) are shared by LeNet,
VGG and ResNet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.mlp import dense_layers

Activation = Callable[[], nn.Module]
Size = tuple[int, ...]
PADDINGS = ("same", "valid")
POOLS = ("max", "avg", "l2", "none")
GLOBAL_POOLS = ("avg", "max", "none")
BLOCK_KEYS = ("filters", "kernel", "stride", "padding", "pool", "pool_size")


def conv_output_size(w: int, f: int, s: int = 1, p: int | str = 0) -> int:
    """Output width of a conv (or pool) of size f, stride s, padding p over width w.

    p is a number of zeros added on each side: floor((w - f + 2p) / s) + 1 ('valid' is p=0);
    or 'same', which pads just enough for ceil(w / s).
    """
    if p == "same":
        return math.ceil(w / s)
    if p == "valid":
        p = 0
    return (w - f + 2 * p) // s + 1


def same_padding(w: int, f: int, s: int) -> tuple[int, int]:
    """Zeros (before, after) that make a conv of size f, stride s give ceil(w / s) (TensorFlow's rule)."""
    total = max((math.ceil(w / s) - 1) * s + f - w, 0)
    return total // 2, total - total // 2


class ToMap(nn.Module):
    """Reshape each example to (channels, *size): a no-op for images, (N, D) -> (N, 1, D) for vectors."""

    def __init__(self, shape: Size) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class L2Pool(nn.Module):
    """L2 pooling: sqrt(sum of squares) over each window = sqrt(avg_pool(x^2) * window area).

    Same values as F.lp_pool2d(x, 2, size); the sum is clamped at 1e-12 so all-zero windows
    (common after ReLU) give no infinite gradient through the square root.
    """

    def __init__(self, dims: int, size: int) -> None:
        super().__init__()
        self.dims, self.size = dims, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = F.avg_pool2d if self.dims == 2 else F.avg_pool1d
        squares = avg(x * x, self.size) * self.size**self.dims
        return squares.clamp_min(1e-12).sqrt()

    def extra_repr(self) -> str:
        return f"kernel_size={self.size}"


def feature_map(spec: DataSpec) -> tuple[int, Size]:
    """(channels, spatial size) the first conv sees: images as they are, vectors as (1, D)."""
    if spec.kind == "image":
        channels, *size = spec.input_shape
        return channels, tuple(size)
    if spec.kind == "vector":
        return 1, (spec.input_dim,)
    raise ConfigError(
        f"convolutional models read images or vectors, not data of kind '{spec.kind}'."
    )


def image_map(spec: DataSpec, model: str) -> tuple[int, Size]:
    """feature_map for models designed around 2-D images (LeNet, VGG, ResNet)."""
    if spec.kind != "image":
        raise ConfigError(
            f"model={model} needs image data (C, H, W), not '{spec.kind}'; use model=cnn or mlp."
        )
    return feature_map(spec)


def conv(
    c_in: int, c_out: int, size: Size, kernel: int, stride: int = 1, padding: str = "same"
) -> tuple[list[nn.Module], Size]:
    """A Conv1d/Conv2d (after a zero-pad layer when 'same' needs uneven padding) and its output size."""
    dims = len(size)
    conv_cls = nn.Conv2d if dims == 2 else nn.Conv1d
    out = tuple(conv_output_size(w, kernel, stride, padding) for w in size)
    if padding == "valid":
        return [conv_cls(c_in, c_out, kernel, stride)], out
    pads = [same_padding(w, kernel, stride) for w in size]
    if all(before == after for before, after in pads):
        return [conv_cls(c_in, c_out, kernel, stride, padding=tuple(b for b, _ in pads))], out
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad order: last dim first
    pad_cls = nn.ConstantPad2d if dims == 2 else nn.ConstantPad1d
    return [pad_cls(tuple(flat), 0.0), conv_cls(c_in, c_out, kernel, stride)], out


def pool(kind: str, pool_size: int, size: Size) -> tuple[list[nn.Module], Size]:
    """A pooling layer of window = stride = pool_size and its output size.

    Skipped (no layer) when the map is already smaller than the window, so deep stacks work on
    small inputs (8x8 digits, 2-feature vectors).
    """
    if kind == "none" or pool_size <= 1 or min(size) < pool_size:
        return [], size
    dims = len(size)
    layer = {
        "max": nn.MaxPool2d if dims == 2 else nn.MaxPool1d,
        "avg": nn.AvgPool2d if dims == 2 else nn.AvgPool1d,
    }.get(kind)
    made = layer(pool_size) if layer else L2Pool(dims, pool_size)
    return [made], tuple(w // pool_size for w in size)


def norm_layer(channels: int, size: Size) -> nn.Module:
    """BatchNorm2d for image maps, BatchNorm1d for 1-D signals."""
    return nn.BatchNorm2d(channels) if len(size) == 2 else nn.BatchNorm1d(channels)


def global_pool_layer(kind: str, size: Size) -> list[nn.Module]:
    if kind == "none":
        return []
    if len(size) == 2:
        return [nn.AdaptiveAvgPool2d(1) if kind == "avg" else nn.AdaptiveMaxPool2d(1)]
    return [nn.AdaptiveAvgPool1d(1) if kind == "avg" else nn.AdaptiveMaxPool1d(1)]


def _block_settings(i: int, block: Mapping) -> dict:
    block = dict(block)
    unknown = sorted(set(block) - set(BLOCK_KEYS))
    if unknown:
        raise ConfigError(
            f"model.blocks[{i}] has unknown key(s) {', '.join(unknown)}; "
            f"a block takes {', '.join(BLOCK_KEYS)}."
        )
    s = {"stride": 1, "padding": "same", "pool": "max", "pool_size": 2, **block}
    for key in ("filters", "kernel", "stride", "pool_size"):
        if key not in s or not isinstance(s[key], int) or s[key] < 1:
            raise ConfigError(
                f"model.blocks[{i}].{key} must be a positive integer, got {s.get(key)!r}."
            )
    if s["padding"] not in PADDINGS:
        raise ConfigError(f"model.blocks[{i}].padding must be same or valid, got '{s['padding']}'.")
    if s["pool"] not in POOLS:
        raise ConfigError(
            f"model.blocks[{i}].pool must be one of {', '.join(POOLS)}, got '{s['pool']}'."
        )
    return s


class CNN(nn.Sequential):
    """`features` (conv blocks, then the optional global pool and a flatten) then `classifier`.

    Each block: conv (kernel, stride, padding same|valid) -> batchnorm (regularizer=batchnorm) ->
    activation -> pool (max|avg|l2|none, window pool_size). A maxout activation makes its conv
    k times wider in channels. The classifier is the dense `head` with dropout, then the output.
    """

    def __init__(
        self,
        spec: DataSpec,
        blocks: Sequence[Mapping] = ({"filters": 32, "kernel": 3}, {"filters": 64, "kernel": 3}),
        head: Sequence[int] = (128,),
        global_pool: str = "none",
        activation: Activation = nn.ReLU,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        if global_pool not in GLOBAL_POOLS:
            raise ConfigError(
                f"model.global_pool must be one of {', '.join(GLOBAL_POOLS)}, got '{global_pool}'."
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}.")
        channels, size = feature_map(spec)
        layers: list[nn.Module] = [ToMap((channels, *size))]
        for i, block in enumerate(blocks):
            s = _block_settings(i, block)
            unit = activation()
            width = s["filters"] * getattr(unit, "widen", 1)
            if s["padding"] == "valid" and min(size) < s["kernel"]:
                shape = "x".join(map(str, size))
                raise ConfigError(
                    f"model.blocks[{i}] (kernel {s['kernel']}, padding valid) would shrink the "
                    f"{channels}x{shape} map below one pixel; use padding: same or fewer blocks."
                )
            made, size = conv(channels, width, size, s["kernel"], s["stride"], s["padding"])
            layers += made
            if batchnorm:
                layers.append(norm_layer(width, size))
            layers.append(unit)
            made, size = pool(s["pool"], s["pool_size"], size)
            layers += made
            channels = s["filters"]
        layers += global_pool_layer(global_pool, size)
        layers.append(nn.Flatten())
        flat = channels * (1 if global_pool != "none" else math.prod(size))
        super().__init__()
        self.out_shape = (channels, *size)  # the last conv block's map, before any global pool
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            *dense_layers(flat, head, spec.num_classes, activation, dropout, batchnorm)
        )
