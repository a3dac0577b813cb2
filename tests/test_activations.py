"""The activation group: each option shapes its output as its concept says."""

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
from lightdl.models.mlp import MLP, Perceptron


def _layer(tmp_path, option, *overrides):
    return instantiate(make_cfg(tmp_path, f"activation={option}", *overrides).activation)()


@pytest.mark.parametrize(
    ("option", "check"),
    [
        ("sigmoid", lambda y: bool((y > 0).all() and (y < 1).all())),
        ("tanh", lambda y: bool((y > -1).all() and (y < 1).all()) and abs(float(y.mean())) < 0.05),
        ("relu", lambda y: bool((y >= 0).all()) and float((y == 0).float().mean()) > 0.4),
        ("leaky_relu", lambda y: float(y.min()) < 0 and float(y.min()) > -0.1 * 4),
        ("elu", lambda y: float(y.min()) > -1.0 and float(y.min()) < -0.9),
        ("step", lambda y: set(y.unique().tolist()) == {0.0, 1.0}),
    ],
)
def test_activation_shapes_its_output(tmp_path, option, check):
    torch.manual_seed(0)
    assert check(_layer(tmp_path, option)(torch.randn(10_000) * 2))


def test_leaky_relu_slope_is_alpha(tmp_path):
    layer = _layer(tmp_path, "leaky_relu", "activation.alpha=0.2")
    assert float(layer(torch.tensor([-10.0]))) == pytest.approx(-2.0)


def test_elu_and_gelu_follow_their_formulas(tmp_path):
    x = torch.linspace(-4, 4, 101)
    elu = _layer(tmp_path, "elu", "activation.alpha=0.5")(x)
    assert torch.allclose(elu, torch.where(x > 0, x, 0.5 * (x.exp() - 1)))
    phi = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    assert torch.allclose(_layer(tmp_path, "gelu")(x), x * phi, atol=1e-6)


def test_prelu_slope_is_a_trained_parameter(tmp_path):
    net, _ = fit_net(tmp_path, "activation=prelu", "activation.alpha=0.25", epochs=2)
    slopes = [m.weight for m in net.modules() if isinstance(m, nn.PReLU)]
    assert slopes and all(any(s is p for p in net.parameters()) for s in slopes)
    assert all(abs(float(s) - 0.25) > 1e-4 for s in slopes)  # the optimizer moved them


def test_rrelu_samples_slopes_in_training_and_uses_the_mean_at_eval(tmp_path):
    layer = _layer(tmp_path, "rrelu", "activation.lower=0.1", "activation.upper=0.3")
    x = -torch.ones(1000)
    layer.train()
    slopes = -layer(x)
    assert float(slopes.min()) >= 0.1 and float(slopes.max()) <= 0.3
    assert float(slopes.std()) > 0.03  # random per element
    layer.eval()
    assert torch.allclose(layer(x), torch.full_like(x, -0.2))


def test_maxout_takes_k_pieces_and_contains_relu(tmp_path):
    cfg = make_cfg(tmp_path, "activation=maxout", "activation.k=3", "model.hidden=[16]")
    net = build.build_net(cfg, DataSpec((8,), 4, "vector"), [])
    assert net[1].out_features == 16 * 3  # the linear layer feeds 3 pieces per unit
    x = torch.randn(5, 8)
    pieces = net[1](net[0](x)).view(5, 16, 3)
    assert torch.equal(net[2](net[1](net[0](x))), pieces.amax(dim=2))
    # k=2 with the second piece's weights fixed at zero is exactly the ReLU
    maxout = _layer(tmp_path, "maxout", "activation.k=2")
    z = torch.randn(5, 7)
    paired = torch.stack([z, torch.zeros_like(z)], dim=2).flatten(1)
    assert torch.equal(maxout(paired), torch.relu(z))


def test_selu_with_lecun_init_keeps_a_deep_stack_normalized(tmp_path):
    """20 layers: SELU+LeCun keeps mean ~0 and std ~1; ReLU with the same init shrinks the signal."""
    spec = DataSpec((256,), 10, "vector")
    x = torch.randn(2048, 256)
    stats = {}
    for option in ("selu", "relu"):
        cfg = make_cfg(tmp_path, f"activation={option}", "init=lecun_normal", "model.hidden=[256]")
        torch.manual_seed(0)
        act = instantiate(cfg.activation)
        net = MLP(spec, hidden=[256] * 20, activation=act)
        instantiate(cfg.init)(net)
        hidden = x
        with torch.no_grad():
            for layer in list(net)[:-1]:  # everything but the output layer
                hidden = layer(hidden)
        stats[option] = (float(hidden.mean()), float(hidden.std()))
    mean, std = stats["selu"]
    assert abs(mean) < 0.15 and 0.8 < std < 1.2
    assert stats["relu"][1] < 0.05


def test_deep_sigmoid_stack_has_vanishing_gradients():
    """First-layer gradient norm relative to the last: tiny for 10 sigmoid layers, not for ReLU."""
    spec = DataSpec((64,), 10, "vector")
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    ratio = {}
    for name, act in (("sigmoid", nn.Sigmoid), ("relu", nn.ReLU)):
        torch.manual_seed(0)
        net = MLP(spec, hidden=[64] * 10, activation=act)
        nn.functional.cross_entropy(net(x), y).backward()
        linears = [m for m in net if isinstance(m, nn.Linear)]
        ratio[name] = float(linears[0].weight.grad.norm() / linears[-1].weight.grad.norm())
    assert ratio["sigmoid"] < 1e-4
    assert ratio["relu"] > 100 * ratio["sigmoid"]


def test_step_is_refused_where_gradients_must_flow(tmp_path):
    cfg = make_cfg(tmp_path, "activation=step")
    with pytest.raises(ConfigError, match="model=perceptron model.rule=perceptron"):
        build.build_net(cfg, DataSpec((8,), 2, "vector"), [])
    cfg = make_cfg(tmp_path, "model=perceptron", "model.rule=perceptron", "activation=relu")
    with pytest.raises(ConfigError, match="activation=step"):
        build.build_net(cfg, DataSpec((8,), 2, "vector"), [])


def test_perceptron_rule_is_rosenblatts_update(tmp_path):
    """One SGD step on one example: w_j += lr * (t_j - step(s_j)) * x for every output unit j."""
    cfg = make_cfg(
        tmp_path, "model=perceptron", "model.rule=perceptron", "activation=step", "optimizer=sgd"
    )
    torch.manual_seed(1)
    net = build.build_net(cfg, DataSpec((4,), 3, "vector"), [])
    assert isinstance(net, Perceptron)
    loss_fn = build.build_loss(cfg, net, [])
    x, y = torch.randn(1, 4), torch.tensor([2])
    w, b = net[1].weight.detach().clone(), net[1].bias.detach().clone()
    fired = (net(x) > 0).float()[0]
    target = torch.nn.functional.one_hot(y, 3).float()[0]
    assert (target != fired).any()  # some unit is wrong, so the rule must move the weights
    lr = 0.5
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn(net(x), y).backward()
    optimizer.step()
    assert torch.allclose(net[1].weight, w + lr * (target - fired)[:, None] * x)
    assert torch.allclose(net[1].bias, b + lr * (target - fired))


def test_perceptron_rule_learns_a_linearly_separable_problem(tmp_path):
    """moons with no noise is not separable; a wide-margin linear split of xor's inputs is."""
    net, trainer = fit_net(
        tmp_path,
        "data=moons",
        "data.noise=0.0",
        "model=perceptron",
        "model.rule=perceptron",
        "activation=step",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "preprocess=none",
        epochs=5,
    )
    assert (
        float(trainer.callback_metrics["val/acc"]) > 0.8
    )  # moons' halves are mostly linearly apart
