"""Losses and optimizers from conf/ show their effect: formulas on hand examples and short fits."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from conftest import make_cfg
from hydra.utils import instantiate

from lightdl import build


def _fit(tmp_path, *overrides):
    """Fit with `overrides` (seeded) and return the trainer's final metrics as floats."""
    cfg = make_cfg(tmp_path, *overrides)
    datamodule = build.build_datamodule(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule.spec, [])
    trainer = build.build_trainer(cfg, [], [], [], tmp_path)
    trainer.fit(task, datamodule=datamodule)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _loss(tmp_path, name, *overrides):
    return instantiate(make_cfg(tmp_path, f"loss={name}", *overrides).loss)


# --- losses ------------------------------------------------------------------------------------


def test_bce_is_one_logistic_loss_per_class(tmp_path):
    loss = _loss(tmp_path, "bce")
    logits, target = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([0])

    def softplus(z):  # -log sigmoid(-z) = -log(1 - sigmoid(z))
        return math.log1p(math.exp(z))

    # true class: -log sigmoid(2); others: -log(1 - sigmoid(z)); mean over the 3 units
    expected = (softplus(-2.0) + softplus(-1.0) + softplus(0.5)) / 3
    assert float(loss(logits, target)) == pytest.approx(expected, rel=1e-6)
    # each unit is judged alone: raising a wrong class's score costs even if the true class leads
    assert float(loss(torch.tensor([[2.0, 1.0, 0.5]]), target)) > expected


def test_bce_trains_moons_to_high_accuracy(tmp_path):
    metrics = _fit(
        tmp_path,
        "data=moons",
        "model=mlp",
        "model.hidden=[32,32]",
        "loss=bce",
        "optimizer=adam",
        "optimizer.lr=0.01",
        "trainer.max_epochs=3",
    )
    assert metrics["val/acc"] > 0.95


def test_hinge_matches_its_formula(tmp_path):
    scores, target = torch.tensor([[0.1, 0.2, 0.4, 0.8]]), torch.tensor([3])
    # sum over wrong classes i of max(0, margin - s[y] + s[i]), divided by the number of classes
    one = (max(0, 1 - 0.8 + 0.1) + max(0, 1 - 0.8 + 0.2) + max(0, 1 - 0.8 + 0.4)) / 4
    assert float(_loss(tmp_path, "hinge")(scores, target)) == pytest.approx(one)
    two = (max(0, 2 - 0.8 + 0.1) + max(0, 2 - 0.8 + 0.2) + max(0, 2 - 0.8 + 0.4)) / 4
    wide = _loss(tmp_path, "hinge", "loss.margin=2.0")
    assert float(wide(scores, target)) == pytest.approx(two)
    # only the violating class counts: with margin 0.5, 0.8 - 0.4 = 0.4 < 0.5 is the one violation
    narrow = _loss(tmp_path, "hinge", "loss.margin=0.5")
    assert float(narrow(scores, target)) == pytest.approx((0.5 - 0.8 + 0.4) / 4)


def test_hinge_is_zero_with_zero_gradient_once_margins_are_met(tmp_path):
    loss = _loss(tmp_path, "hinge")
    scores = torch.tensor([[0.0, 3.0, 1.9], [5.0, 1.0, -2.0]], requires_grad=True)
    value = loss(scores, torch.tensor([1, 0]))  # true class leads every other by >= 1
    value.backward()
    assert float(value) == 0.0 and torch.count_nonzero(scores.grad) == 0
    # cross-entropy still pushes the same, already correct, scores apart
    ce = _loss(tmp_path, "cross_entropy")(scores, torch.tensor([1, 0]))
    assert float(ce) > 0


def test_mse_learns_classification_slower_than_cross_entropy(tmp_path):
    budget = ("data=digits", "optimizer=sgd", "optimizer.lr=0.05", "trainer.max_epochs=2")
    ce = _fit(tmp_path, *budget, "loss=cross_entropy")["val/acc"]
    mse = _fit(tmp_path, *budget, "loss=mse")["val/acc"]
    # same net, init, data order and steps: ~0.75 vs ~0.1 (chance) with these settings
    assert ce > 0.6 and ce > mse + 0.3


# --- optimizers --------------------------------------------------------------------------------


def _optimizer(tmp_path, name, params, *overrides):
    return instantiate(make_cfg(tmp_path, f"optimizer={name}", *overrides).optimizer)(params)


@pytest.mark.parametrize("name", ["nesterov", "adamw", "adadelta"])
def test_new_optimizers_compose_and_descend(tmp_path, name):
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = _optimizer(tmp_path, name, [w])
    start = float(0.5 * w.pow(2).sum())
    for _ in range(20):
        optimizer.zero_grad()
        (0.5 * w.pow(2).sum()).backward()
        optimizer.step()
    assert float(0.5 * w.pow(2).sum()) < start


def test_nesterov_looks_ahead_along_the_velocity(tmp_path):
    lr, mu = 0.05, 0.9
    grads = [torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 0.0])]
    paths = {}
    for name in ("momentum", "nesterov"):
        w = torch.nn.Parameter(torch.zeros(2))
        optimizer = _optimizer(
            tmp_path, name, [w], f"optimizer.lr={lr}", f"optimizer.momentum={mu}"
        )
        paths[name] = []
        for g in grads:
            w.grad = g.clone()
            optimizer.step()
            paths[name].append(w.detach().clone())
    # v = mu v + g; momentum: w -= lr v; nesterov: w -= lr (g + mu v)
    v, plain, ahead = torch.zeros(2), torch.zeros(2), torch.zeros(2)
    for i, g in enumerate(grads):
        v = mu * v + g
        plain, ahead = plain - lr * v, ahead - lr * (g + mu * v)
        assert torch.allclose(paths["momentum"][i], plain)
        assert torch.allclose(paths["nesterov"][i], ahead)
    assert not torch.allclose(paths["momentum"][0], paths["nesterov"][0])


def test_adamw_decay_is_decoupled_from_the_gradient(tmp_path):
    lr, wd = 0.01, 0.1
    init = torch.tensor([3.0, -0.5, 0.01])
    overrides = (f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}")
    w = torch.nn.Parameter(init.clone())
    adamw = _optimizer(tmp_path, "adamw", [w], *overrides)
    for step in range(1, 4):
        w.grad = torch.zeros(3)  # no data gradient: only the decay moves the weights
        adamw.step()
        assert torch.allclose(w.detach(), init * (1 - lr * wd) ** step)  # shrinks by lr*wd*w
    # Adam's coupled L2 puts wd*w in the gradient, which its scaling turns into a ~lr step for
    # every weight: the small weight jumps past zero instead of shrinking by 0.1%
    coupled = torch.nn.Parameter(init.clone())
    adam = _optimizer(
        tmp_path, "adam", [coupled], f"optimizer.lr={lr}", f"+optimizer.weight_decay={wd}"
    )
    coupled.grad = torch.zeros(3)
    adam.step()
    assert torch.allclose(coupled.detach(), init - lr * torch.sign(init), atol=1e-5)


def test_adadelta_sets_its_own_small_first_step(tmp_path):
    w = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = _optimizer(tmp_path, "adadelta", [w])
    cfg = make_cfg(tmp_path, "optimizer=adadelta").optimizer
    rho, eps, lr = cfg.rho, cfg.eps, cfg.lr
    w.grad = torch.tensor([100.0])
    optimizer.step()
    # square_avg = (1 - rho) g^2; step = sqrt(0 + eps) / sqrt(square_avg + eps) * g: about
    # sqrt(eps / (1 - rho)) whatever the gradient's size
    step = math.sqrt(eps) / math.sqrt((1 - rho) * 100.0**2 + eps) * 100.0
    assert float(w) == pytest.approx(1.0 - lr * step, rel=1e-6)
    assert 1.0 - float(w) == pytest.approx(math.sqrt(eps / (1 - rho)), rel=1e-3)
