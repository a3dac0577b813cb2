"""Each concept shows its effect: regularizers, initializations, activations."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import make_cfg
from hydra.utils import instantiate

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.init import weights
from lightdl.models.mlp import MLP
from lightdl.train import train

SPEC = DataSpec(input_shape=(64,), num_classes=10, kind="vector")


def _fit(tmp_path, *overrides, callbacks=()):
    """Train the default MLP on digits for 3 epochs and return the fitted net."""
    cfg = make_cfg(tmp_path, "trainer.max_epochs=3", *overrides)
    datamodule = build.build_datamodule(cfg)
    regularizers = build.build_regularizers(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, regularizers)
    task = build.build_task(cfg, net, datamodule.spec, regularizers)
    trainer = build.build_trainer(cfg, list(callbacks), [], regularizers, tmp_path)
    trainer.fit(task, datamodule=datamodule)
    return net


def _weight_norm(net):
    return float(sum(w.pow(2).sum() for w in weights(net)).sqrt())


def test_l2_gives_smaller_weights(tmp_path):
    plain = _fit(tmp_path, "optimizer=sgd")
    decayed = _fit(tmp_path, "optimizer=sgd", "regularizer=l2", "regularizer.l2.lam=0.3")
    assert _weight_norm(decayed) < 0.8 * _weight_norm(plain)


class UpdateNorm(L.Callback):
    """With plain SGD the update is -lr * grad, so |update| / lr is the gradient norm actually used."""

    def __init__(self, lr):
        self.lr, self.norms, self._before = lr, [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        delta = [p.detach() - b for p, b in zip(pl_module.parameters(), self._before, strict=True)]
        self.norms.append(float(torch.sqrt(sum(d.pow(2).sum() for d in delta))) / self.lr)


def test_clip_norm_bounds_the_gradient_norm(tmp_path):
    lr = 0.1
    args = ("optimizer=sgd", f"optimizer.lr={lr}", "init=normal", "init.std=0.5")
    free, clipped = UpdateNorm(lr), UpdateNorm(lr)
    _fit(tmp_path, *args, callbacks=[free])
    _fit(
        tmp_path,
        *args,
        "regularizer=clip_norm",
        "regularizer.clip_norm.max_norm=0.5",
        callbacks=[clipped],
    )
    assert max(free.norms) > 1.0
    assert max(clipped.norms) <= 0.5 * (1 + 1e-4)


def test_dropout_is_random_in_training_and_deterministic_at_eval():
    torch.manual_seed(0)
    net = MLP(SPEC, hidden=[128], dropout=0.5)
    x = torch.randn(16, 64)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))
    assert torch.equal(net(x), net[4](net[2](net[1](net[0](x)))))  # eval: no drop, no rescale


def test_zero_init_keeps_hidden_units_identical(tmp_path):
    net = _fit(tmp_path, "init=zeros", "optimizer=sgd")
    first = net[1].weight
    assert torch.equal(first, first[0:1].expand_as(first))
    varied = _fit(tmp_path, "init=xavier_uniform", "optimizer=sgd")[1].weight
    assert not torch.equal(varied, varied[0:1].expand_as(varied))


@pytest.mark.parametrize(
    ("option", "overrides", "expected_std"),
    [
        ("normal", ["init.std=0.2"], lambda fi, fo: 0.2),
        ("xavier_uniform", [], lambda fi, fo: (2 / (fi + fo)) ** 0.5),
        ("he_normal", [], lambda fi, fo: (2 / fi) ** 0.5),
    ],
)
def test_init_variance_follows_its_rule(tmp_path, option, overrides, expected_std):
    cfg = make_cfg(tmp_path, f"init={option}", *overrides)
    torch.manual_seed(0)
    net = MLP(DataSpec(input_shape=(400,), num_classes=10, kind="vector"), hidden=[300])
    instantiate(cfg.init)(net)
    w = net[1].weight
    assert float(w.std()) == pytest.approx(expected_std(400, 300), rel=0.03)
    assert torch.all(net[1].bias == 0)


def test_truncated_normal_has_nothing_beyond_two_std(tmp_path):
    cfg = make_cfg(tmp_path, "init=truncated_normal", "init.std=0.1")
    net = MLP(DataSpec(input_shape=(400,), num_classes=10, kind="vector"), hidden=[300])
    instantiate(cfg.init)(net)
    assert float(net[1].weight.abs().max()) <= 0.2
    assert float(net[1].weight.abs().max()) > 0.19


def test_default_init_keeps_pytorch_biases(tmp_path):
    cfg = make_cfg(tmp_path, "init=default")
    net = MLP(SPEC, hidden=[32])
    before = net[1].bias.clone()
    instantiate(cfg.init)(net)
    assert torch.equal(before, net[1].bias) and bool(before.abs().sum() > 0)


@pytest.mark.parametrize(
    ("option", "check"),
    [
        ("sigmoid", lambda y: bool((y > 0).all() and (y < 1).all())),
        ("tanh", lambda y: bool((y > -1).all() and (y < 1).all()) and abs(float(y.mean())) < 0.05),
        ("relu", lambda y: bool((y >= 0).all()) and float((y == 0).float().mean()) > 0.4),
        ("leaky_relu", lambda y: float(y.min()) < 0 and float(y.min()) > -0.1 * 4),
    ],
)
def test_activation_shapes_its_output(tmp_path, option, check):
    torch.manual_seed(0)
    layer = instantiate(make_cfg(tmp_path, f"activation={option}").activation)()
    assert check(layer(torch.randn(10_000) * 2))


def test_leaky_relu_slope_is_alpha(tmp_path):
    layer = instantiate(
        make_cfg(tmp_path, "activation=leaky_relu", "activation.alpha=0.2").activation
    )()
    assert float(layer(torch.tensor([-10.0]))) == pytest.approx(-2.0)


def test_regularizers_combine(tmp_path):
    cfg = make_cfg(tmp_path, "regularizer=[l2,dropout]", "regularizer.dropout.p=0.3")
    regularizers = build.build_regularizers(cfg)
    net = build.build_net(cfg, build.build_datamodule(cfg).spec, regularizers)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in net.modules())
    task = build.build_task(cfg, net, build.build_datamodule(cfg).spec, regularizers)
    assert len(task.penalties) == 1
    assert train(cfg, tmp_path / "run")["status"] == "completed"
