"""Capsule network (Sabour, Frosst & Hinton 2017): vector capsules and dynamic routing by agreement.

A capsule is a vector whose length is the probability that an entity is present and whose
direction describes it. The network's output is one capsule per class; its length, in (0, 1),
is the class score (the task's argmax picks the longest). Train it with loss=margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

Activation = Callable[[], nn.Module]


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """v = |s|^2 / (1 + |s|^2) * s / |s|: same direction as s, length in [0, 1).

    Short vectors shrink to almost zero, long ones to just below unit length (exactly 1 only
    once float rounding makes |s|^2 / (1 + |s|^2) equal 1). eps keeps s = 0 finite (v = 0).
    """
    n2 = (s * s).sum(dim=dim, keepdim=True)
    return (n2 / (1.0 + n2)) * s / torch.sqrt(n2 + eps)


def capsule_lengths(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """|v| over the last dimension, with eps so the gradient is finite at v = 0."""
    return torch.sqrt((v * v).sum(dim=-1) + eps)


def route(u_hat: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic routing by agreement (Procedure 1 of Sabour et al.).

    u_hat: (batch, inputs, outputs, dim), each input capsule's prediction for each output capsule.
    Routing logits b start at 0; each iteration sets the coupling c = softmax of b over the
    outputs (each input capsule shares itself out: sum over outputs = 1), the output capsule
    v_j = squash(sum_i c_ij u_hat_ij), and (except after the last) b_ij += u_hat_ij . v_j, so
    inputs whose predictions agree with an output send it more. With 1 iteration c is uniform.
    Returns (v: (batch, outputs, dim), c: (batch, inputs, outputs)).
    """
    if iterations < 1:
        raise ConfigError(f"model.routing_iterations must be at least 1, got {iterations}.")
    logits = u_hat.new_zeros(u_hat.shape[:3])
    for step in range(iterations):
        coupling = logits.softmax(dim=2)
        v = squash((coupling.unsqueeze(-1) * u_hat).sum(dim=1))
        if step < iterations - 1:
            logits = logits + (u_hat * v.unsqueeze(1)).sum(dim=-1)
    return v, coupling


def _out_size(size: int, kernel: int, stride: int = 1) -> int:
    return (size - kernel) // stride + 1


class CapsNet(nn.Module):
    """conv (activation) -> primary capsules (conv, reshape, squash) -> class capsules by routing.

    conv: `conv_channels` maps, `kernel` x `kernel`, stride 1, no padding.
    primary capsules: a conv (`kernel`, stride 2) with primary_caps * primary_dim maps, read as
    `primary_caps` capsule types of `primary_dim` dimensions at every position of its output grid.
    class capsules: every primary capsule i predicts every class capsule j through its own
    matrix W_ij (class_dim x primary_dim); `routing_iterations` rounds of routing combine them.
    Output: the class capsules' lengths (batch, classes), each in (0, 1): scores for loss=margin.

    The default kernel 3 fits 8x8 digits (8 -> 6 -> 2: 2x2 grid) as well as 28x28 (26 -> 12)
    and 32x32 (30 -> 14); model.kernel=9 on 28x28 gives the paper's 20x20 maps and 6x6 grid of
    1152 primary capsules (with conv_channels=256, primary_caps=32 for the full-size model).

    reconstruction=true adds the paper's decoder: an MLP (512, 1024, sigmoid) from the class
    capsules with all but one masked to zero to the flattened image. `reconstruct` and
    `reconstruction_error` (0.0005 * summed squared error, masked by the true class) compute it,
    and the training task adds it to the loss (`auxiliary_loss`, logged as train/aux_loss), so
    the capsules are pushed to encode the image, as in the paper.
    """

    def __init__(
        self,
        spec: DataSpec,
        activation: Activation = nn.ReLU,
        conv_channels: int = 64,
        kernel: int = 3,
        primary_caps: int = 8,
        primary_dim: int = 8,
        class_dim: int = 16,
        routing_iterations: int = 3,
        reconstruction: bool = False,
    ) -> None:
        super().__init__()
        if spec.kind != "image" or len(spec.input_shape) != 3:
            raise ConfigError(
                f"model=capsnet needs image data (channels, height, width); this data set gives "
                f"{spec.kind} examples of shape {tuple(spec.input_shape)}."
            )
        for name, value in (
            ("conv_channels", conv_channels),
            ("kernel", kernel),
            ("primary_caps", primary_caps),
            ("primary_dim", primary_dim),
            ("class_dim", class_dim),
        ):
            if value < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {value}.")
        if routing_iterations < 1:
            raise ConfigError(
                f"model.routing_iterations must be at least 1, got {routing_iterations}."
            )
        channels, height, width = spec.input_shape
        grid = [_out_size(_out_size(n, kernel), kernel, 2) for n in (height, width)]
        if min(grid) < 1:
            raise ConfigError(
                f"model.kernel={kernel} is too large for {height}x{width} images: the conv and the "
                f"primary-capsule conv (stride 2) leave no positions; use a kernel of at most "
                f"{max(k for k in range(1, min(height, width) + 1) if _grid_ok(height, width, k))}."
            )
        self.spec = spec
        self.routing_iterations = routing_iterations
        self.primary_caps, self.primary_dim, self.class_dim = primary_caps, primary_dim, class_dim
        self.num_primary = primary_caps * grid[0] * grid[1]

        unit = activation()
        pieces = getattr(unit, "widen", 1)  # maxout reduces `pieces` maps to one
        self.conv = nn.Sequential(nn.Conv2d(channels, conv_channels * pieces, kernel), unit)
        self.primary = nn.Conv2d(conv_channels, primary_caps * primary_dim, kernel, stride=2)
        # one (class_dim x primary_dim) matrix per (primary capsule, class): the paper's W_ij.
        # std = classes / sqrt(inputs * primary_dim): with the first pass's uniform coupling
        # (1 / classes) each class capsule sums `inputs` predictions, so this keeps its length
        # near 0.2 at the start for any grid size (a fixed 0.01 gives ~1e-5 on 8x8 digits, where
        # routing has nothing to agree on, and saturates near 1 on large grids).
        std = spec.num_classes / math.sqrt(self.num_primary * primary_dim)
        self.weight = nn.Parameter(
            std * torch.randn(self.num_primary, spec.num_classes, class_dim, primary_dim)
        )
        self.decoder = (
            nn.Sequential(
                nn.Linear(spec.num_classes * class_dim, 512),
                nn.ReLU(),
                nn.Linear(512, 1024),
                nn.ReLU(),
                nn.Linear(1024, spec.input_dim),
                nn.Sigmoid(),
            )
            if reconstruction
            else None
        )
        self.last_coupling: torch.Tensor | None = None
        self.has_auxiliary_loss = reconstruction
        self._last_capsules: torch.Tensor | None = None

    def primary_capsules(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, num_primary, primary_dim), squashed."""
        maps = self.primary(self.conv(x))  # (B, types * dim, H', W')
        batch, _, h, w = maps.shape
        caps = maps.view(batch, self.primary_caps, self.primary_dim, h, w)
        caps = caps.permute(0, 1, 3, 4, 2).reshape(batch, -1, self.primary_dim)
        return squash(caps)

    def capsules(self, x: torch.Tensor) -> torch.Tensor:
        """The class capsules (batch, classes, class_dim); the coupling is kept in last_coupling."""
        u = self.primary_capsules(x)
        u_hat = torch.einsum("ijdk,bik->bijd", self.weight, u)
        v, coupling = route(u_hat, self.routing_iterations)
        self.last_coupling = coupling.detach()
        return v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.capsules(x)
        if self.decoder is not None and self.training:
            self._last_capsules = v  # for auxiliary_loss in the same training step
        return capsule_lengths(v)

    def auxiliary_loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The reconstruction term for the batch of the last training forward pass."""
        v, self._last_capsules = self._last_capsules, None
        if v is None or len(v) != len(x):
            raise RuntimeError(
                "auxiliary_loss must follow a training forward pass on the same batch."
            )
        return self.reconstruction_error(v, x, target)

    def reconstruct(self, v: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the capsule of `target` (or of the longest class) to an image of the input's shape."""
        if self.decoder is None:
            raise ConfigError("reconstruction needs model.reconstruction=true.")
        if target is None:
            target = capsule_lengths(v).argmax(dim=-1)
        mask = F.one_hot(target, v.shape[1]).to(v.dtype).unsqueeze(-1)
        return self.decoder((v * mask).flatten(1)).view(-1, *self.spec.input_shape)

    def reconstruction_error(
        self, v: torch.Tensor, x: torch.Tensor, target: torch.Tensor, scale: float = 0.0005
    ) -> torch.Tensor:
        """The paper's regulariser: scale * sum of squared pixel errors, mean over the batch.

        Inputs are compared as given; the decoder's sigmoid assumes pixels in [0, 1].
        """
        image = self.reconstruct(v, target)
        return scale * ((image - x) ** 2).flatten(1).sum(dim=1).mean()


def _grid_ok(height: int, width: int, kernel: int) -> bool:
    return all(_out_size(_out_size(n, kernel), kernel, 2) >= 1 for n in (height, width))
