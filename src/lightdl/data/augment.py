"""Data augmentation for image batches: batched, vectorized torch ops, random per example.

Each option of the `augment` group instantiates one of these; the task calls it as `x = transform(x)`
on TRAINING batches only (evaluation batches are never augmented). Inputs are float tensors of shape
(N, C, H, W) on any device; labels are untouched. Randomness comes from torch's global generator on
the batch's device, so runs are repeatable under torch.manual_seed / lightning's seed_everything.
No op loops over examples in Python: per-example randomness is drawn as (N,)-shaped tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from lightdl.errors import ConfigError

FILLS = ("zeros", "edge")


class Augment:
    """Base: checks that a batch holds images, then applies `apply` to it."""

    name = "augment"  # the option name, used in error messages

    def check(self, spec) -> None:
        """Raise a ConfigError unless the dataset (a DataSpec) gives images (C, H, W).

        Build code may call this right after instantiation so a misfit is reported before training;
        without it the same error is raised at the first training batch.
        """
        if spec.kind != "image" or len(spec.input_shape) != 3:
            raise ConfigError(
                f"augment={self.name} needs image data (N, C, H, W); this dataset gives "
                f"{spec.kind} inputs of shape {tuple(spec.input_shape)}."
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ConfigError(
                f"augment={self.name} needs image data (N, C, H, W); got a batch of shape "
                f"{tuple(x.shape)} (vectors or sequences cannot be augmented this way)."
            )
        if len(x) == 0:
            return x
        return self.apply(x)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _check_fill(fill: str) -> str:
    if fill not in FILLS:
        raise ConfigError(f"fill={fill!r} is not one of {FILLS}.")
    return fill


def _translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, m: int, fill: str):
    """Move example i down by dy[i] and right by dx[i] pixels (|d| <= m); vacated pixels are
    zero (fill="zeros") or copy the nearest edge pixel (fill="edge").

    Pads by m on every side and gathers one (H, W) window per example with advanced indexing.
    """
    if m == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (m, m, m, m), mode="constant" if fill == "zeros" else "replicate")
    rows = torch.arange(h, device=x.device) + (m - dy)[:, None]  # (N, H) rows of `padded`
    cols = torch.arange(w, device=x.device) + (m - dx)[:, None]  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # advanced dims first: (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def _offsets(n: int, m: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example integer offsets drawn uniformly from [-m, m] for rows and columns."""
    return (torch.randint(-m, m + 1, (n,), device=device) for _ in range(2))


class Shift(Augment):
    """Random integer translation per example, up to max_fraction of the height and of the width
    (Keras' height_shift_range / width_shift_range): at most round(max_fraction * H) rows and
    round(max_fraction * W) columns in either direction. Vacated pixels are zero or copy the edge.
    """

    name = "shift"

    def __init__(self, max_fraction: float = 0.1, fill: str = "zeros") -> None:
        if not 0 <= max_fraction < 1:
            raise ConfigError(f"augment.shift.max_fraction={max_fraction} must be in [0, 1).")
        self.max_fraction = max_fraction
        self.fill = _check_fill(fill)

    def max_pixels(self, h: int, w: int) -> tuple[int, int]:
        return round(self.max_fraction * h), round(self.max_fraction * w)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        mh, mw = self.max_pixels(*x.shape[-2:])
        n = len(x)
        dy = torch.randint(-mh, mh + 1, (n,), device=x.device)
        dx = torch.randint(-mw, mw + 1, (n,), device=x.device)
        return _translate(x, dy, dx, max(mh, mw), self.fill)


class Crop(Augment):
    """Pad by `padding` pixels on every side, then take a random crop of the original size
    (the CIFAR recipe): the output shape is unchanged and its content is a window of the padded input.
    """

    name = "crop"

    def __init__(self, padding: int = 4, fill: str = "zeros") -> None:
        if padding < 0 or int(padding) != padding:
            raise ConfigError(f"augment.crop.padding={padding} must be a whole number >= 0.")
        self.padding = int(padding)
        self.fill = _check_fill(fill)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        dy, dx = _offsets(len(x), self.padding, x.device)
        return _translate(x, dy, dx, self.padding, self.fill)


class Flip(Augment):
    """Horizontal (left-right) flip of each example with probability p."""

    name = "flip"

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ConfigError(f"augment.flip.p={p} must be a probability in [0, 1].")
        self.p = p

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(len(x), device=x.device) < self.p
        return torch.where(flip[:, None, None, None], x.flip(-1), x)


class Rotate(Augment):
    """Rotation about the image center by an angle drawn uniformly from [-max_degrees, max_degrees]
    per example, with bilinear interpolation; corners rotated in from outside are zero.
    """

    name = "rotate"

    def __init__(self, max_degrees: float = 15.0) -> None:
        if not 0 <= max_degrees <= 180:
            raise ConfigError(f"augment.rotate.max_degrees={max_degrees} must be in [0, 180].")
        self.max_degrees = max_degrees

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        angle = (torch.rand(len(x), device=x.device) * 2 - 1) * math.radians(self.max_degrees)
        return rotate(x, angle)


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate example i of x (N, C, H, W) by angle[i] radians about its center, bilinear, zero fill.

    affine_grid works in coordinates normalized to [-1, 1] per axis, so for H != W the rotation is
    corrected by the aspect ratio to be a true rotation in pixel space.
    """
    _, _, h, w = x.shape
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(angle)
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, zero], dim=-1),
            torch.stack([sin * w / h, cos, zero], dim=-1),
        ],
        dim=1,
    ).to(x.dtype)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Cutout(Augment):
    """Erase (set to 0) one random size x size square per example, with probability p.

    The square lies wholly inside the image, so exactly size * size pixels (in every channel) are
    erased. Its side is `size` pixels, or round(fraction * min(H, W)) when size is null.
    With standardized inputs 0 is the mean, the usual fill.
    """

    name = "cutout"

    def __init__(self, size: int | None = None, fraction: float = 0.25, p: float = 1.0) -> None:
        if size is not None and (size < 0 or int(size) != size):
            raise ConfigError(f"augment.cutout.size={size} must be a whole number >= 0 or null.")
        if not 0 <= fraction <= 1:
            raise ConfigError(f"augment.cutout.fraction={fraction} must be in [0, 1].")
        if not 0 <= p <= 1:
            raise ConfigError(f"augment.cutout.p={p} must be a probability in [0, 1].")
        self.size = None if size is None else int(size)
        self.fraction = fraction
        self.p = p

    def side(self, h: int, w: int) -> int:
        side = self.size if self.size is not None else round(self.fraction * min(h, w))
        if side > min(h, w):
            raise ConfigError(
                f"augment.cutout.size={side} does not fit in {h}x{w} images; "
                f"use a smaller size or set size=null and use fraction."
            )
        return side

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.side(h, w)
        if s == 0:
            return x
        top = torch.randint(0, h - s + 1, (n, 1), device=x.device)
        left = torch.randint(0, w - s + 1, (n, 1), device=x.device)
        r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (r >= top) & (r < top + s)  # (N, H)
        in_cols = (c >= left) & (c < left + s)  # (N, W)
        erase = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
        erase &= (torch.rand(n, device=x.device) < self.p)[:, None, None]
        return x.masked_fill(erase[:, None], 0)


class Compose(Augment):
    """Several augmentations applied in order, as one option."""

    name = "compose"

    def __init__(self, transforms: Iterable[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def check(self, spec) -> None:
        for transform in self.transforms:
            if isinstance(transform, Augment):
                transform.check(spec)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x


class Standard(Compose):
    """The common light recipe for small images: random shift, then random horizontal flip."""

    name = "standard"

    def __init__(self, max_fraction: float = 0.1, p: float = 0.5, fill: str = "zeros") -> None:
        super().__init__([Shift(max_fraction, fill), Flip(p)])
        self.max_fraction, self.p, self.fill = max_fraction, p, fill

    def __repr__(self) -> str:
        return f"Standard(max_fraction={self.max_fraction!r}, p={self.p!r}, fill={self.fill!r})"
