"""The init group: each rule's values follow its formula; zeros and ones never break symmetry."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import fit_net, make_cfg
from hydra.utils import instantiate
from torch import nn

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.mlp import MLP

WIDE = DataSpec(input_shape=(400,), num_classes=10, kind="vector")


def _init(tmp_path, option, *overrides, net=None):
    net = net if net is not None else MLP(WIDE, hidden=[300])
    torch.manual_seed(0)
    instantiate(make_cfg(tmp_path, f"init={option}", *overrides).init)(net)
    return net


@pytest.mark.parametrize(
    ("option", "overrides", "expected_std"),
    [
        ("normal", ["init.std=0.2"], lambda fi, fo: 0.2),
        ("small_random", [], lambda fi, fo: 0.01),
        ("xavier_uniform", [], lambda fi, fo: (2 / (fi + fo)) ** 0.5),
        ("xavier_normal", [], lambda fi, fo: (2 / (fi + fo)) ** 0.5),
        ("he_normal", [], lambda fi, fo: (2 / fi) ** 0.5),
        ("he_uniform", [], lambda fi, fo: (2 / fi) ** 0.5),
        ("lecun_normal", [], lambda fi, fo: (1 / fi) ** 0.5),
        ("fan_in_uniform", [], lambda fi, fo: (1 / (3 * fi)) ** 0.5),
    ],
)
def test_init_variance_follows_its_rule(tmp_path, option, overrides, expected_std):
    w = _init(tmp_path, option, *overrides)[1].weight  # 300 x 400: 120,000 samples
    assert float(w.mean()) == pytest.approx(0.0, abs=0.01 * expected_std(400, 300))
    assert float(w.std()) == pytest.approx(expected_std(400, 300), rel=0.02)


def test_fan_in_uniform_bounds_depend_on_fan_in(tmp_path):
    net = _init(tmp_path, "fan_in_uniform", net=MLP(WIDE, hidden=[25]))
    for layer, n in ((net[1], 400), (net[3], 25)):
        bound = 1 / math.sqrt(n)
        assert float(layer.weight.abs().max()) <= bound
        assert float(layer.weight.abs().max()) > 0.9 * bound


def test_uniform_respects_its_range(tmp_path):
    w = _init(tmp_path, "uniform", "init.a=-0.3", "init.b=0.1")[1].weight
    assert float(w.min()) >= -0.3 and float(w.max()) < 0.1
    assert float(w.min()) < -0.29 and float(w.max()) > 0.09
    default = _init(tmp_path, "uniform")[1].weight
    assert float(default.min()) >= 0.0 and float(default.max()) < 1.0


def test_uniform_refuses_an_empty_range(tmp_path):
    from lightdl.validate import validate

    with pytest.raises(ConfigError, match="init.a must be below init.b"):
        validate(make_cfg(tmp_path, "init=uniform", "init.a=1.0", "init.b=0.5"))


def test_truncated_normal_has_nothing_beyond_two_std(tmp_path):
    w = _init(tmp_path, "truncated_normal", "init.std=0.1")[1].weight
    assert float(w.abs().max()) <= 0.2
    assert float(w.abs().max()) > 0.19


def test_orthogonal_gives_orthonormal_columns(tmp_path):
    net = _init(tmp_path, "orthogonal", net=MLP(WIDE, hidden=[300]))
    w = net[1].weight  # 300 x 400, wide: rows are orthonormal
    assert torch.allclose(w @ w.T, torch.eye(300), atol=1e-4)
    head = net[3].weight  # 10 x 300
    assert torch.allclose(head @ head.T, torch.eye(10), atol=1e-4)


def test_orthogonal_can_target_hidden_to_hidden_only(tmp_path):
    cfg = make_cfg(
        tmp_path, "model=lstm", "model.hidden_size=32", "init=orthogonal", "init.targets=[hh]"
    )
    net = build.build_net(cfg, DataSpec((1, 8, 8), 10, "image"), [])
    hh, ih = net.rnn.weight_hh_l0, net.rnn.weight_ih_l0
    for gate in hh.chunk(4):  # each gate's 32x32 block is orthogonal
        assert torch.allclose(gate.T @ gate, torch.eye(32), atol=1e-4)
    assert not torch.allclose(ih.T @ ih, torch.eye(ih.shape[1]), atol=0.1)
    # input-to-hidden and the head keep PyTorch's uniform range; forget bias kept at 1
    bound = 1 / math.sqrt(32)
    assert float(ih.abs().max()) <= bound and float(net.head.weight.abs().max()) <= bound
    assert bool((net.rnn.bias_ih_l0[32:64] == 1.0).all())


def test_init_reaches_recurrent_weights(tmp_path):
    cfg = make_cfg(tmp_path, "model=gru", "model.hidden_size=16", "init=zeros")
    net = build.build_net(cfg, DataSpec((1, 8, 8), 10, "image"), [])
    assert all(float(p.abs().sum()) == 0 for n, p in net.rnn.named_parameters() if "weight" in n)


def test_unknown_init_target_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="init.targets may hold linear, conv, ih, hh"):
        _init(tmp_path, "orthogonal", "init.targets=[hidden]")


@pytest.mark.parametrize("option", ["zeros", "ones"])
def test_constant_init_keeps_hidden_units_identical(tmp_path, option):
    net, trainer = fit_net(tmp_path, f"init={option}", "optimizer=sgd")
    first = net[1].weight
    assert torch.equal(first, first[0:1].expand_as(first))  # symmetry never broken
    assert float(trainer.callback_metrics["val/acc"]) < 0.35  # near chance on 10 classes
    if option == "ones":  # identical units give every class the same score: the loss sits at ln 10
        assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(
            math.log(10), abs=0.01
        )


def test_random_init_breaks_symmetry(tmp_path):
    net, trainer = fit_net(tmp_path, "init=xavier_uniform", "optimizer=sgd")
    varied = net[1].weight
    assert not torch.equal(varied, varied[0:1].expand_as(varied))
    assert float(trainer.callback_metrics["val/acc"]) > 0.8


def test_default_init_keeps_pytorch_biases(tmp_path):
    net = MLP(DataSpec((64,), 10, "vector"), hidden=[32])
    before = net[1].bias.clone()
    _init(tmp_path, "default", net=net)
    assert torch.equal(before, net[1].bias) and bool(before.abs().sum() > 0)


def test_inits_set_biases_to_bias(tmp_path):
    net = _init(tmp_path, "he_uniform", "init.bias=0.1")
    assert torch.all(net[1].bias == 0.1) and torch.all(net[3].bias == 0.1)
    assert isinstance(net[1], nn.Linear)
