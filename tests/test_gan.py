"""model=gan and dcgan with AdversarialTask: each optimizer moves only its own network, the
D/G step ratio holds, the tricks follow their formulas, labels are never read, training is sane."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import make_cfg

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.gan import DCGAN, GAN
from lightdl.tasks.adversarial import (
    d_targets,
    flip_labels,
    gradient_penalty,
    instance_noise_std,
    real_target,
)

GAN_FAST = ["model=gan", "preprocess=none", "model.hidden=[64,64]", "model.latent_dim=16"]


def _fit(tmp_path, *overrides, callbacks=(), epochs=1, wrap=None, base=GAN_FAST):
    """Build the task the CLI would build and fit it; `wrap(datamodule)` may replace its loaders."""
    cfg = make_cfg(tmp_path, f"trainer.max_epochs={epochs}", *base, *overrides)
    datamodule = build.build_datamodule(cfg)
    if wrap is not None:
        wrap(datamodule)
    regularizers = build.build_regularizers(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, regularizers)
    task = build.build_task(cfg, net, datamodule, regularizers)
    trainer = build.build_trainer(cfg, list(callbacks), [], regularizers, tmp_path)
    trainer.fit(task, datamodule=datamodule)
    return net, task, trainer


class StepWatcher(L.Callback):
    """Hooks both raw optimizers: records each step's network, checks that the other network's
    parameters are bit-identical across it and that its own network's parameters moved."""

    def __init__(self) -> None:
        self.order: list[str] = []  # "D" / "G" per optimizer step
        self.per_batch: list[tuple[int, int]] = []
        self.violations: list[str] = []
        self.own_moved: list[bool] = []

    def on_train_start(self, trainer, pl_module) -> None:
        net = pl_module.net
        opt_d, opt_g = trainer.optimizers
        for opt, own, other, name in (
            (opt_d, net.discriminator, net.generator, "D"),
            (opt_g, net.generator, net.discriminator, "G"),
        ):
            snapshot: dict = {}

            def pre(optimizer, args, kwargs, own=own, other=other, snapshot=snapshot):
                snapshot["own"] = [p.detach().clone() for p in own.parameters()]
                snapshot["other"] = [p.detach().clone() for p in other.parameters()]

            def post(optimizer, args, kwargs, own=own, other=other, snapshot=snapshot, name=name):
                self.order.append(name)
                after = [p.detach() for p in other.parameters()]
                if not all(
                    torch.equal(a, b) for a, b in zip(snapshot["other"], after, strict=True)
                ):
                    self.violations.append(f"{name} step changed the other network")
                mine = [p.detach() for p in own.parameters()]
                self.own_moved.append(
                    any(not torch.equal(a, b) for a, b in zip(snapshot["own"], mine, strict=True))
                )

            opt.register_step_pre_hook(pre)
            opt.register_step_post_hook(post)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = len(self.order)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        steps = self.order[self._start :]
        self.per_batch.append((steps.count("D"), steps.count("G")))
        assert steps == ["D"] * steps.count("D") + ["G"] * steps.count("G")  # D first, then G


def test_each_optimizer_moves_only_its_network_and_step_ratio_holds(tmp_path):
    watcher = StepWatcher()
    _, _, trainer = _fit(
        tmp_path, "model.d_steps=2", "model.g_steps=1", "data.batch_size=128", callbacks=[watcher]
    )
    batches = trainer.num_training_batches
    assert watcher.violations == []
    assert all(watcher.own_moved)  # every step changed its own network
    assert watcher.per_batch == [(2, 1)] * batches  # 2 D steps then 1 G step, every batch
    assert watcher.order.count("D") == 2 * batches and watcher.order.count("G") == batches


def test_optimizers_cover_disjoint_parameter_sets_with_per_network_lr(tmp_path):
    cfg = make_cfg(tmp_path, *GAN_FAST, "optimizer.lr=0.01", "model.d_lr=0.001")
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    opt_d, opt_g = task.configure_optimizers()
    d_ids = {id(p) for g in opt_d.param_groups for p in g["params"]}
    g_ids = {id(p) for g in opt_g.param_groups for p in g["params"]}
    assert d_ids == {id(p) for p in net.discriminator.parameters()}
    assert g_ids == {id(p) for p in net.generator.parameters()}
    assert opt_d.param_groups[0]["lr"] == 0.001 and opt_g.param_groups[0]["lr"] == 0.01


def test_one_sided_label_smoothing_and_label_noise():
    assert real_target(0.1) == pytest.approx(0.9)
    targets = d_targets(5, 3, label_smoothing=0.1)
    assert torch.allclose(targets, torch.tensor([0.9] * 5 + [0.0] * 3))
    # label noise swaps real (0.9) <-> fake (0) for about the requested fraction
    gen = torch.Generator().manual_seed(0)
    noisy = d_targets(50_000, 50_000, 0.1, 0.2, generator=gen)
    real_half, fake_half = noisy[:50_000], noisy[50_000:]
    assert noisy.unique().tolist() == pytest.approx([0.0, 0.9])
    assert (real_half == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert (fake_half > 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(flip_labels(targets, 0.0, 0.9), targets)  # no noise: unchanged


def test_instance_noise_decays_linearly_per_epoch(tmp_path):
    expected = [0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.0, 0.0, 0.0]
    assert [instance_noise_std(e, 0.5, 10) for e in range(13)] == pytest.approx(expected)
    assert instance_noise_std(7, 0.3, 0) == 0.3  # no decay: constant

    class Record(L.Callback):
        """noise_std() per epoch, and the smallest value D saw in training per epoch."""

        def __init__(self) -> None:
            self.stds: list[float] = []
            self.lowest: list[float] = []

        def on_train_start(self, trainer, pl_module):
            def pre(module, args):
                if module.training:
                    self.lowest[-1] = min(self.lowest[-1], args[0].min().item())

            pl_module.net.discriminator.register_forward_pre_hook(pre)

        def on_train_epoch_start(self, trainer, pl_module):
            self.stds.append(pl_module.noise_std())
            self.lowest.append(float("inf"))

    record = Record()
    _fit(
        tmp_path,
        "model.instance_noise=0.4",
        "model.noise_decay_epochs=2",
        "data.batch_size=512",
        callbacks=[record],
        epochs=3,
    )
    assert record.stds == pytest.approx([0.4, 0.2, 0.0])  # the task uses the schedule per epoch
    # pixels and G's sigmoid outputs lie in [0, 1]: values below 0 come from the noise alone
    assert record.lowest[0] < -0.5 and record.lowest[1] < -0.25
    assert record.lowest[2] >= 0.0


class Poison:
    """A label stand-in: moving it to a device is allowed, any other use fails loudly."""

    touched: list[str] = []

    def to(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        Poison.touched.append(name)
        raise AssertionError(f"the adversarial task read a label ({name})")


class Unlabelled:
    """Wraps a loader: the same image batches, with a Poison in place of the labels."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return ((x, Poison()) for x, _ in self.batches)


DCGAN_FAST = ["model=dcgan", "preprocess=none", "model.channels=8", "model.latent_dim=16"]


@pytest.mark.parametrize("base", [GAN_FAST, DCGAN_FAST], ids=["gan", "dcgan"])
def test_training_validation_and_test_never_touch_labels(tmp_path, base):
    def wrap(datamodule):
        for split in ("train", "val", "test"):
            loader = getattr(datamodule, f"{split}_dataloader")
            setattr(datamodule, f"{split}_dataloader", lambda loader=loader: Unlabelled(loader()))

    Poison.touched.clear()
    _, task, trainer = _fit(tmp_path, "data.batch_size=256", wrap=wrap, base=base)
    fitted = set(trainer.callback_metrics)
    trainer.test(task, datamodule=trainer.datamodule, verbose=False)
    assert Poison.touched == []
    assert {"train/d_loss", "val/loss", "val/d_loss"} <= fitted
    assert {"test/loss", "test/g_loss", "test/d_real_acc"} <= set(trainer.callback_metrics)


def test_short_run_on_digits_trains_without_nan_and_d_is_not_saturated(tmp_path):
    net, task, trainer = _fit(
        tmp_path,
        "model.hidden=[128,128]",
        "optimizer.lr=0.0002",  # the DCGAN paper's Adam settings: lr 1e-3, beta1 0.9 diverge
        "optimizer.betas=[0.5,0.999]",
        epochs=5,
    )
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    names = ["train/d_loss", "train/g_loss", "val/d_loss", "val/g_loss", "val/loss"]
    assert all(torch.isfinite(torch.tensor(m[k])) for k in names)
    # D's epoch-mean accuracies over ~20 batches with dropout: neither hopeless nor perfect
    for key in ("train/d_real_acc", "train/d_fake_acc"):
        assert 0.0 < m[key] < 1.0, (key, m[key])
    assert m["val/loss"] == m["val/g_loss"]
    # samples are images in [0, 1] whose mean image has moved towards the data's mean image
    real = trainer.datamodule.splits["train"][0]
    torch.manual_seed(1)
    with torch.no_grad():
        fake = net.generate(torch.randn(512, net.latent_dim))
    assert fake.shape == (512, 1, 8, 8) and fake.min() >= 0 and fake.max() <= 1
    untrained = GAN(trainer.datamodule.spec, latent_dim=16, hidden=[128, 128])
    with torch.no_grad():
        before = untrained.generate(torch.randn(512, 16))
    gap_now = (fake.mean(0) - real.mean(0)).abs().mean().item()
    gap_before = (before.mean(0) - real.mean(0)).abs().mean().item()
    assert gap_now < 0.6 * gap_before, (gap_now, gap_before)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_dcgan_generates_images_of_the_data_shape(shape):
    spec = DataSpec(input_shape=shape, num_classes=10, kind="image")
    net = DCGAN(spec, latent_dim=20, channels=8)
    images = net.generate(torch.randn(4, 20))
    assert images.shape == (4, *shape)
    assert images.min() >= 0 and images.max() <= 1
    assert net(images).shape == (4,)  # one logit per image
    assert net.latent_dim == 20 and net.objective == "adversarial" and not net.conditional


def test_models_refuse_what_they_cannot_generate():
    with pytest.raises(ConfigError, match="divides by 4"):
        DCGAN(DataSpec(input_shape=(1, 30, 30), num_classes=10, kind="image"))
    with pytest.raises(ConfigError, match="image"):
        GAN(DataSpec(input_shape=(2,), num_classes=2, kind="vector"))


@pytest.mark.parametrize(
    "override, words",
    [
        ("loss=mse", "loss group"),
        ("regularizer=label_smoothing", "model.label_smoothing"),
        ("regularizer=clip_norm", "gradient clipping"),
        ("regularizer=l2", "two optimizers"),
        ("regularizer=input_noise", "model.instance_noise"),
        ("scheduler=cosine", "scheduler=none"),
        ("model.d_steps=0", "model.d_steps"),
        ("model.label_smoothing=1.0", "model.label_smoothing"),
        ("model.gan_loss=hinge", "model.gan_loss must be one of"),
        ("model.gp_weight=-1", "model.gp_weight"),
        ("model.gan_loss=wasserstein model.label_smoothing=0.1", "Wasserstein critic"),
    ],
)
def test_settings_that_do_not_apply_are_refused_in_one_sentence(tmp_path, override, words):
    cfg = make_cfg(tmp_path, *GAN_FAST, *override.split())
    datamodule = build.build_datamodule(cfg)
    regularizers = build.build_regularizers(cfg)
    with pytest.raises(ConfigError) as info:
        net = build.build_net(cfg, datamodule.spec, regularizers)
        build.build_task(cfg, net, datamodule, regularizers)
    assert words in str(info.value)
    assert str(info.value).count(". ") == 0  # one sentence


def test_gradient_penalty_follows_its_formula():
    w = torch.tensor([3.0, 4.0])  # a linear critic: its gradient is w everywhere, ||w|| = 5
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert gradient_penalty(lambda v: v @ w, real, fake).item() == pytest.approx(16.0)  # (5-1)^2
    unit = w / 5  # a 1-Lipschitz linear critic pays nothing
    assert gradient_penalty(lambda v: v @ unit, real, fake).item() == pytest.approx(0.0, abs=1e-6)
    # a quadratic critic: the gradient 2*x_hat depends on where the mix lands
    torch.manual_seed(0)
    penalty = gradient_penalty(lambda v: v.pow(2).sum(1), real, fake)
    torch.manual_seed(0)
    eps = torch.rand(6, 1)
    mixed = eps * real + (1 - eps) * fake
    assert penalty.item() == pytest.approx(((2 * mixed).norm(dim=1) - 1).pow(2).mean().item())


def test_wasserstein_losses_critic_without_batchnorm_and_a_short_run(tmp_path):
    net, task, trainer = _fit(
        tmp_path,
        "model.gan_loss=wasserstein",
        "model.d_steps=2",
        "optimizer.lr=0.0002",
        "optimizer.betas=[0.0,0.9]",
        epochs=2,
        base=DCGAN_FAST,
    )
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert task.d_loss(real, fake).item() == pytest.approx(-2.5)  # mean fake - mean real
    assert task.g_loss(fake).item() == pytest.approx(0.5)  # -mean fake
    norms = [type(m).__name__ for m in net.discriminator.modules()]
    assert "BatchNorm2d" not in norms and "GroupNorm" in norms  # the penalty is per example
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert all(torch.isfinite(torch.tensor(m[k])) for k in ("train/d_loss", "val/d_loss"))
    # the critic separates real from fake: its loss (fake minus real score) is below 0
    assert m["val/d_loss"] < 0, m["val/d_loss"]
