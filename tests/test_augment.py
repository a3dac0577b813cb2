"""The augment group: each option shown by its effect on image batches, and only on training batches."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from conftest import fit_net, make_cfg
from torch.nn import functional as F

from lightdl import build
from lightdl.data.augment import Crop, Cutout, Flip, Rotate, Shift, Standard, rotate
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.paths import options

OPTIONS = [o for o in options("augment") if o != "none"]


def _built(tmp_path, option: str, *overrides: str):
    (made,) = build.build_augment(make_cfg(tmp_path, f"augment=[{option}]", *overrides))
    return made


def _dot_images(n: int, h: int, w: int, row: int, col: int) -> torch.Tensor:
    x = torch.zeros(n, 1, h, w)
    x[:, :, row, col] = 1.0
    return x


def _positions(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of each example's brightest pixel."""
    flat = x[:, 0].flatten(1).argmax(dim=1)
    return flat // x.shape[-1], flat % x.shape[-1]


def test_options_are_the_designed_ones():
    assert {"none", "shift", "flip", "rotate", "crop", "cutout", "standard"} <= set(
        options("augment")
    )


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_changes_only_x_and_keeps_its_shape(tmp_path, option):
    """Every transform takes x alone (labels cannot change), keeps shape and dtype, works out of place."""
    transform = _built(tmp_path, option)
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 20)
    before = x.clone()
    out = transform(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(x, before)  # the loaded batch is not modified in place
    assert not torch.equal(out, x)  # and something did change


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_is_deterministic_under_manual_seed(tmp_path, option):
    transform = _built(tmp_path, option)
    x = torch.rand(32, 1, 12, 12)
    torch.manual_seed(3)
    a = transform(x)
    torch.manual_seed(3)
    b = transform(x)
    torch.manual_seed(4)
    c = transform(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_parameters_are_exposed_as_config_keys(tmp_path):
    assert _built(tmp_path, "shift", "augment.shift.max_fraction=0.3").max_fraction == 0.3
    assert _built(tmp_path, "flip", "augment.flip.p=0.2").p == 0.2
    assert _built(tmp_path, "rotate", "augment.rotate.max_degrees=5").max_degrees == 5
    assert _built(tmp_path, "crop", "augment.crop.padding=2").padding == 2
    assert _built(tmp_path, "cutout", "augment.cutout.size=3").size == 3
    standard = _built(tmp_path, "standard", "augment.standard.p=0.1")
    shift, flip = standard.transforms
    assert isinstance(shift, Shift) and isinstance(flip, Flip) and flip.p == 0.1
    combined = build.build_augment(make_cfg(tmp_path, "augment=[shift,flip]"))
    assert [type(t) for t in combined] == [Shift, Flip]


def test_shift_moves_a_pixel_by_at_most_max_fraction():
    """A single bright pixel at the center lands within round(0.2*21)=4 rows/cols of it, and every
    offset in that range occurs; the image is otherwise unchanged (zero)."""
    torch.manual_seed(0)
    x = _dot_images(4000, 21, 21, 10, 10)
    out = Shift(max_fraction=0.2)(x)
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(4000))  # moved, never blurred or lost
    rows, cols = _positions(out)
    dy, dx = rows - 10, cols - 10
    assert dy.abs().max() == 4 and dx.abs().max() == 4
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) == 81  # all 9 x 9 offsets
    assert (dy != dx).any()  # rows and columns move independently


def test_shift_limits_height_and_width_separately():
    torch.manual_seed(0)
    x = _dot_images(2000, 20, 40, 10, 20)
    rows, cols = _positions(Shift(max_fraction=0.1)(x))
    assert set((rows - 10).tolist()) == {-2, -1, 0, 1, 2}
    assert set((cols - 20).tolist()) == {-4, -3, -2, -1, 0, 1, 2, 3, 4}


def test_shift_fill_zero_or_edge():
    torch.manual_seed(1)
    x = torch.ones(200, 1, 10, 10)
    zeros = Shift(max_fraction=0.3)(x)
    edge = Shift(max_fraction=0.3, fill="edge")(x)
    assert (zeros == 0).any(dim=(1, 2, 3)).float().mean() > 0.9  # nearly all moved in some zeros
    assert torch.equal(edge, x)  # an all-ones image copies ones into the vacated pixels


def test_flip_applies_with_probability_p_and_equals_torch_flip():
    torch.manual_seed(0)
    x = torch.rand(20000, 1, 4, 5)
    out = Flip(p=0.3)(x)
    flipped = (out == x.flip(-1)).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert torch.all(flipped ^ kept)  # each example is exactly torch.flip'ed or untouched
    assert float(flipped.float().mean()) == pytest.approx(0.3, abs=0.015)
    assert torch.equal(Flip(p=0.0)(x), x)
    assert torch.equal(Flip(p=1.0)(x), x.flip(-1))


def test_rotate_by_a_right_angle_is_rot90():
    """The rotation helper is exact where pixel centers map onto pixel centers."""
    x = torch.rand(2, 3, 7, 7)
    turned = rotate(x, torch.full((2,), math.pi / 2))
    assert torch.allclose(turned, torch.rot90(x, k=1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(rotate(x, torch.zeros(2)), x, atol=1e-6)


def test_rotate_is_a_true_rotation_on_non_square_images():
    """affine_grid's coordinates are normalized per axis; the aspect correction keeps distances."""
    x = _dot_images(1, 21, 41, 10, 30)  # 10 px right of the center (10, 20)
    out = rotate(x, torch.tensor([math.radians(30.0)]))[0, 0]
    row = float((out.sum(dim=1) * (torch.arange(21.0) - 10)).sum() / out.sum())
    col = float((out.sum(dim=0) * (torch.arange(41.0) - 20)).sum() / out.sum())
    assert math.hypot(row, col) == pytest.approx(10, abs=0.3)
    assert abs(math.degrees(math.atan2(row, col))) == pytest.approx(30, abs=1.0)


def test_rotate_keeps_the_angle_within_max_degrees():
    """A bright pixel 10 px right of the center moves along the circle by at most max_degrees;
    its angle, estimated from the intensity centroid, spreads over the whole allowed range."""
    torch.manual_seed(0)
    n, size, radius, max_degrees = 2000, 33, 10, 20.0
    x = _dot_images(n, size, size, 16, 16 + radius)
    out = Rotate(max_degrees=max_degrees)(x)
    grid = torch.arange(size, dtype=torch.float32) - 16
    mass = out[:, 0].sum(dim=(1, 2))
    row = (out[:, 0].sum(dim=2) * grid).sum(dim=1) / mass
    col = (out[:, 0].sum(dim=1) * grid).sum(dim=1) / mass
    angle = torch.rad2deg(torch.atan2(row, col))
    assert angle.abs().max() <= max_degrees + 1.0  # bilinear centroid: within a degree
    assert angle.abs().max() >= max_degrees - 1.0
    assert angle.min() < -0.5 * max_degrees and angle.max() > 0.5 * max_degrees
    assert torch.allclose(torch.hypot(row, col), torch.full((n,), float(radius)), atol=0.5)


def test_crop_is_a_window_of_the_padded_input():
    torch.manual_seed(0)
    x = torch.rand(300, 3, 8, 8)
    out = Crop(padding=2)(x)
    assert out.shape == x.shape
    padded = F.pad(x, (2, 2, 2, 2))
    windows = torch.stack(
        [padded[:, :, a : a + 8, b : b + 8] for a in range(5) for b in range(5)], dim=1
    )  # (N, 25 offsets, C, H, W)
    match = (windows == out[:, None]).flatten(2).all(dim=2)
    assert torch.all(match.sum(dim=1) == 1)  # each output is exactly one window
    assert torch.all(match.any(dim=0))  # and every one of the 5 x 5 windows occurs


def test_cutout_erases_exactly_one_square_of_the_configured_size():
    torch.manual_seed(0)
    x = torch.ones(500, 3, 12, 12)
    out = Cutout(size=5)(x)
    zero = out == 0
    assert torch.all(zero.sum(dim=(2, 3)) == 25)  # size**2 per example, in every channel
    assert torch.equal(zero[:, 0], zero[:, 2])  # the same square in all channels
    rows, cols = zero[:, 0].any(dim=2), zero[:, 0].any(dim=1)
    assert torch.all(rows.sum(dim=1) == 5) and torch.all(cols.sum(dim=1) == 5)  # a 5 x 5 square
    assert len({tuple(r.nonzero()[0].tolist()) for r in rows}) == 8  # top row anywhere in 0..7


def test_cutout_fraction_and_probability():
    torch.manual_seed(0)
    x = torch.ones(4000, 1, 16, 16)
    out = Cutout(size=None, fraction=0.25, p=0.5)(x)
    erased = (out == 0).sum(dim=(1, 2, 3))
    assert set(erased.tolist()) == {0, 16}  # side round(0.25 * 16) = 4
    assert float((erased > 0).float().mean()) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ConfigError, match="does not fit"):
        Cutout(size=20)(x)


def test_standard_is_shift_then_flip():
    torch.manual_seed(0)
    x = _dot_images(4000, 21, 21, 10, 5)
    rows, cols = _positions(Standard(max_fraction=0.1, p=0.5)(x))
    assert (rows - 10).abs().max() == 2  # round(0.1 * 21)
    mirrored = cols > 10  # a flip sends column 5 +- 2 to 15 -+ 2
    assert float(mirrored.float().mean()) == pytest.approx(0.5, abs=0.03)
    assert set(cols[~mirrored].tolist()) == {3, 4, 5, 6, 7}
    assert set(cols[mirrored].tolist()) == {13, 14, 15, 16, 17}


@pytest.mark.parametrize("option", OPTIONS)
def test_vectors_are_refused_in_one_sentence(tmp_path, option):
    transform = _built(tmp_path, option)
    with pytest.raises(ConfigError, match=rf"augment={option} needs image data \(N, C, H, W\)"):
        transform(torch.rand(8, 2))
    with pytest.raises(ConfigError, match=r"this dataset gives vector inputs of shape \(2,\)"):
        transform.check(DataSpec(input_shape=(2,), num_classes=2, kind="vector"))
    transform.check(DataSpec(input_shape=(1, 8, 8), num_classes=10, kind="image"))


def test_vector_data_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"augment=flip needs image data .* vector inputs"):
        fit_net(tmp_path, "data=moons", "augment=[flip]", epochs=1)


class _Seen(L.Callback):
    """Records what the net's forward receives, split by whether a validation pass is running."""

    def __init__(self) -> None:
        self.validating = False
        self.val, self.train = [], []

    def on_fit_start(self, trainer, pl_module) -> None:
        pl_module.net.register_forward_pre_hook(self._record)

    def _record(self, module, args) -> None:
        if self.validating:
            self.val.append(args[0].detach().clone())
        elif module.training:
            self.train.append(args[0].detach().clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.validating = True

    def on_validation_batch_end(self, trainer, pl_module, *args, **kwargs) -> None:
        self.validating = False


def test_training_with_augment_learns_and_never_augments_evaluation(tmp_path):
    seen = _Seen()
    net, trainer = fit_net(tmp_path, "augment=[flip,shift]", callbacks=[seen], epochs=1)
    assert float(trainer.callback_metrics["val/acc"]) > 0.3  # chance is 0.1
    datamodule = build.build_datamodule(make_cfg(tmp_path, "augment=[flip,shift]"))
    val_x = datamodule.splits["val"][0]
    assert torch.equal(torch.cat(seen.val), val_x)  # the net saw the val split exactly as loaded
    train_x = datamodule.splits["train"][0]
    seen_train = torch.cat(seen.train).flatten(1)
    distance = torch.cdist(seen_train, train_x.flatten(1)).min(dim=1).values
    assert float((distance > 1e-4).float().mean()) > 0.5  # training inputs were augmented


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_trains_a_small_cnn_with_falling_loss(tmp_path, option):
    """20 Adam steps of a small CNN on 256 digits, every batch through the augmentation."""
    digit_sized = {"crop": ["augment.crop.padding=1"]}  # 4 pixels of padding is for 32x32 CIFAR
    cfg = make_cfg(
        tmp_path,
        f"augment=[{option}]",
        *digit_sized.get(option, []),
        "model=cnn",
        "model.blocks=[{filters:8,kernel:3},{filters:16,kernel:3}]",
        "model.head=[32]",
    )
    datamodule = build.build_datamodule(cfg)
    (augment,) = build.build_augment(cfg, datamodule.spec)
    torch.manual_seed(0)
    net = build.build_net(cfg, datamodule.spec, [])
    x, y = (t[:256] for t in datamodule.splits["train"])
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(net(augment(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses
