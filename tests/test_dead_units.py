"""callbacks=dead_units: units forced dead are counted exactly, per feature or per conv channel."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import fit_net, make_cfg

from lightdl import build
from lightdl.callbacks.dead_units import DeadUnits

KILLED = -1e4  # a bias no input can overcome: the unit's input is never positive
MLP = ["model.hidden=[16,8]"]  # net.1 Linear(64, 16), net.2 its ReLU, net.3 Linear(16, 8), net.4
CNN = ["model=cnn", "model.blocks=[{filters:4,kernel:3}]", "model.head=[8]"]


def kill(layer: torch.nn.Module, k: int) -> None:
    """Units 0..k-1 of a Linear or Conv layer can never fire."""
    with torch.no_grad():
        layer.bias[:k] = KILLED


def validated(tmp_path, *overrides, killed: tuple[str, int] | None = None):
    """One validation pass of a freshly initialized composed net with DeadUnits; returns
    (its logged metrics, the callback)."""
    cfg = make_cfg(tmp_path, *overrides)
    datamodule = build.build_datamodule(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    if killed is not None:
        kill(net.get_submodule(killed[0]), killed[1])
    callback = DeadUnits()
    trainer = build.build_trainer(cfg, [callback], [], [], tmp_path)
    (metrics,) = trainer.validate(task, datamodule=datamodule, verbose=False)
    assert sum(len(m._forward_hooks) for m in task.modules()) == 0  # removed after the pass
    return metrics, callback, net, datamodule


def test_a_fresh_net_matches_an_independent_count(tmp_path):
    """The fractions equal those counted directly from the MLP's layer outputs on the whole
    validation split: a fresh net has few dead units (none in the first layer)."""
    metrics, callback, net, datamodule = validated(tmp_path, *MLP)
    assert callback.units == {"net.2": 16, "net.4": 8}
    x = torch.cat([x for x, _ in datamodule.val_dataloader()])
    with torch.no_grad():
        outputs = {n: torch.nn.Sequential(*list(net)[:i])(x) for n, i in (("2", 3), ("4", 5))}
    dead = {n: int((out.amax(dim=0) <= 0).sum()) for n, out in outputs.items()}
    assert dead["2"] == 0 and metrics["dead_units/net.2"] == 0
    assert metrics["dead_units/net.4"] == pytest.approx(dead["4"] / 8)
    assert metrics["dead_units/total"] == pytest.approx(dead["4"] / 24) and dead["4"] <= 2


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu"])
def test_units_forced_dead_are_counted_exactly(tmp_path, activation):
    """5 of the first layer's 16 units get a bias of -1e4: the leaky ones still output
    something (negative) but are never active either."""
    metrics, *_ = validated(tmp_path, *MLP, f"activation={activation}", killed=("1", 5))
    assert metrics["dead_units/net.2"] == pytest.approx(5 / 16)
    second = metrics["dead_units/net.4"] * 8
    assert metrics["dead_units/total"] == pytest.approx((5 + second) / 24)


def test_conv_units_are_channels(tmp_path):
    """A unit of a conv layer is a channel over all positions: 1 of 4 filters killed is 1/4,
    and the layer has 4 units, not 4 x 8 x 8."""
    metrics, callback, *_ = validated(tmp_path, *CNN, killed=("features.1", 1))
    assert callback.units == {"net.features.2": 4, "net.classifier.1": 8}
    assert metrics["dead_units/net.features.2"] == pytest.approx(1 / 4)
    dense = metrics["dead_units/net.classifier.1"] * 8
    assert metrics["dead_units/total"] == pytest.approx((1 + dense) / 12)


class Kill(L.Callback):
    def on_fit_start(self, trainer, pl_module) -> None:
        kill(pl_module.net[1], 3)


def test_dead_relus_stay_dead_through_training(tmp_path):
    """A ReLU unit that never fires gets no gradient: after training it is still dead."""
    callback = DeadUnits()
    _, trainer = fit_net(
        tmp_path, *MLP, "trainer.limit_train_batches=3", callbacks=[Kill(), callback], epochs=2
    )
    assert float(trainer.callback_metrics["dead_units/net.2"]) == pytest.approx(3 / 16)
    assert float(trainer.callback_metrics["dead_units/total"]) >= 3 / 24


def test_total_can_be_monitored_from_the_config(tmp_path):
    """callbacks=[dead_units] with early stopping watching dead_units/total passes the monitor
    check and the value reaches the run's metrics."""
    from lightdl.train import train

    cfg = make_cfg(
        tmp_path,
        "callbacks=[early_stopping,dead_units]",
        "callbacks.early_stopping.monitor=dead_units/total",
        "trainer.limit_train_batches=2",
        *MLP,
    )
    result = train(cfg, tmp_path / "run")
    assert 0 <= result["metrics"]["dead_units/total"] <= 1


def test_a_net_without_relus_reports_nothing(tmp_path, capsys):
    metrics, *_ = validated(tmp_path, *MLP, "activation=sigmoid")
    assert not [k for k in metrics if k.startswith("dead_units/")]
    assert "has no ReLU-family activation module" in capsys.readouterr().out
