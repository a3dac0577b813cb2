"""model=cgan (labels condition G and D) and model=sgan (D classifies from few labels), with
data.unlabelled=keep: what each reads, the formulas, and that training does what it is for."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_cfg
from test_gan import StepWatcher, _fit

from lightdl import build
from lightdl.data.base import NO_LABEL
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.gan import CGAN, SGAN

CGAN_FAST = ["model=cgan", "preprocess=none", "model.channels=16", "model.latent_dim=16"]
SGAN_FAST = [
    "model=sgan", "preprocess=none", "model.channels=16", "model.latent_dim=16",
    "data.train_per_class=10", "data.unlabelled=keep",
]  # fmt: skip
SPEC = DataSpec(input_shape=(1, 8, 8), num_classes=10, kind="image")


def test_cgan_generator_and_discriminator_read_the_class():
    torch.manual_seed(0)
    net = CGAN(SPEC, latent_dim=8, channels=8)
    z = torch.randn(1, 8).repeat(10, 1)  # one latent, ten classes
    net.eval()
    images = net.generate(z, torch.arange(10))
    assert images.shape == (10, 1, 8, 8)
    assert images.std(0).mean() > 0  # same z, different class -> different image
    with torch.no_grad():
        net.discriminator.embed.weight.normal_()
    x = images.detach()
    assert not torch.allclose(net(x, torch.zeros(10, dtype=torch.long)), net(x, torch.arange(10)))
    assert net.conditional and net.num_classes == 10
    with pytest.raises(ValueError, match="labels"):
        net.generate(z)


def test_cgan_optimizers_move_only_their_network_and_d_learns_which_class_an_image_is(tmp_path):
    watcher = StepWatcher()
    net, _, trainer = _fit(
        tmp_path,
        "optimizer.lr=0.001",
        "optimizer.betas=[0.5,0.999]",
        callbacks=[watcher],
        epochs=6,
        base=CGAN_FAST,
    )
    assert watcher.violations == [] and all(watcher.own_moved)
    assert all(ratio == (1, 1) for ratio in watcher.per_batch)
    # D scores a real validation image higher with its own class than with the next class
    x, y = trainer.datamodule.splits["val"]
    net.eval()
    with torch.no_grad():
        right, wrong = net(x, y), net(x, (y + 1) % 10)
    assert (right > wrong).float().mean() > 0.75, (right > wrong).float().mean()


def test_unlabelled_keep_keeps_every_image_and_exactly_n_labels_per_class(tmp_path):
    kept = build.build_datamodule(make_cfg(tmp_path, *SGAN_FAST))
    dropped = build.build_datamodule(
        make_cfg(tmp_path, "preprocess=none", "data.train_per_class=10")
    )
    full = build.build_datamodule(make_cfg(tmp_path, "preprocess=none"))
    x, y = kept.splits["train"]
    assert len(x) == len(full.splits["train"][0])  # no image left out
    labelled = y != NO_LABEL
    assert torch.bincount(y[labelled], minlength=10).tolist() == [10] * 10
    # the same labelled examples as data.unlabelled=drop keeps
    assert torch.equal(x[labelled], dropped.splits["train"][0])
    assert torch.equal(y[labelled], dropped.splits["train"][1])
    assert torch.equal(kept.splits["val"][1], full.splits["val"][1])  # val keeps its labels


def test_sgan_real_logit_and_feature_matching_follow_their_formulas(tmp_path):
    cfg = make_cfg(tmp_path, *SGAN_FAST)
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    net.eval()  # no dropout: the same features on every call
    x = datamodule.splits["train"][0][:32]
    logits = net(x)
    assert logits.shape == (32, 10)  # K class logits; the fake class's logit is 0
    # P(real) = Z / (Z + 1) with Z = sum exp(logits)  <=>  sigmoid(logsumexp(logits))
    z = logits.exp().sum(-1)
    assert torch.allclose(torch.sigmoid(task.d_logit(x, None)), z / (z + 1), atol=1e-6)
    fake = net.generate(torch.randn(32, 16))
    expected = (net.features(fake).mean(0) - net.features(x).mean(0)).pow(2).mean()
    assert torch.allclose(task.g_objective(x, fake, None, 0.0), expected)
    task.feature_matching = False
    assert torch.allclose(
        task.g_objective(x, fake, None, 0.0),
        F.binary_cross_entropy_with_logits(task.d_logit(fake, None), torch.ones(32)),
    )


def test_sgan_learns_to_classify_from_ten_labels_per_class_and_reads_only_those(
    tmp_path, monkeypatch
):
    seen: list[torch.Tensor] = []
    original = F.cross_entropy

    def spy(logits, target, *args, **kwargs):
        seen.append(target.detach().clone())
        return original(logits, target, *args, **kwargs)

    import lightdl.tasks.semi_supervised as semi

    monkeypatch.setattr(semi.F, "cross_entropy", spy)
    net, task, trainer = _fit(
        tmp_path, "optimizer.lr=0.001", "optimizer.betas=[0.5,0.999]", epochs=5, base=SGAN_FAST
    )
    assert len(task.labelled[1]) == 100  # 10 labels per class; the rest of train is -1
    trained = torch.cat(seen)
    assert (trained >= 0).all()  # no -1 ever reached the supervised loss
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert m["val/acc"] > 0.6, m["val/acc"]  # chance is 0.1
    assert m["val/loss"] < 2.0  # the class cross-entropy (ln 10 = 2.3 at chance)
    assert {"train/sup_loss", "train/acc", "val/d_loss", "train/g_loss"} <= set(m)


def test_sgan_forward_is_a_k_class_classifier_and_builds_from_dcgan():
    net = SGAN(SPEC, latent_dim=8, channels=8)
    assert net(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert net.objective == "semi_supervised" and not net.conditional
    with pytest.raises(ConfigError, match="labelled_batch"):
        SGAN(SPEC, labelled_batch=0)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model=cnn", "data.train_per_class=10", "data.unlabelled=keep"], "model=sgan"),
        ([*CGAN_FAST, "data.train_per_class=10", "data.unlabelled=keep"], "without labels"),
        (["model=sgan", "preprocess=none", "data.train_per_class=10"], "data.unlabelled=keep"),
        ([*SGAN_FAST, "data.label_noise=0.1"], "data.label_noise"),
        (["data.unlabelled=some"], "data.unlabelled must be one of"),
        (["model=sgan", "preprocess=none", "data.unlabelled=keep"], "data.train_per_class too"),
        ([*SGAN_FAST, "model.adversarial=maybe"], "model.adversarial must be true or false"),
        (["model=cgan", "preprocess=none", "model.latent_dim=0"], "model.latent_dim"),
        (["model=cgan", "data=moons"], "model=cgan generates images"),
        ([*CGAN_FAST, "+model.gan_loss=wasserstein"], "unconditional critic"),
        ([*SGAN_FAST, "+model.gan_loss=wasserstein"], "unconditional critic"),
    ],
)
def test_label_combinations_that_cannot_work_are_refused(tmp_path, overrides, words):
    cfg = make_cfg(tmp_path, *overrides)
    with pytest.raises(ConfigError) as info:
        datamodule = build.build_datamodule(cfg)
        datamodule.setup()
        net = build.build_net(cfg, datamodule.spec, [])
        build.build_task(cfg, net, datamodule, [])
    assert words in str(info.value)
    assert str(info.value).count(". ") == 0  # one sentence


def test_sgan_baseline_trains_d_alone_with_as_many_supervised_steps(tmp_path):
    watcher = StepWatcher()
    net, task, trainer = _fit(
        tmp_path, "model.adversarial=false", "model.d_steps=2", callbacks=[watcher], base=SGAN_FAST
    )
    batches = trainer.num_training_batches
    assert watcher.order == ["D"] * 2 * batches  # G never steps: no adversarial game
    assert watcher.violations == [] and all(watcher.own_moved)
    m = set(trainer.callback_metrics)
    assert {"train/loss", "train/acc", "val/acc"} <= m and "train/g_loss" not in m
