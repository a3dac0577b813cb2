"""End-to-end training in-process on tiny data: statuses, callbacks, resume, summary fields."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import FAST, make_cfg

from lightdl import build
from lightdl.callbacks.nan_guard import NanGuard
from lightdl.errors import ConfigError
from lightdl.paths import conf_dir, options
from lightdl.train import train


def test_digits_trains_above_90_percent(tmp_path):
    result = train(make_cfg(tmp_path, "trainer.max_epochs=5", "test=true"), tmp_path / "run")
    assert result["status"] == "completed"
    assert result["metrics"]["val/acc"] > 0.9 and result["metrics"]["test/acc"] > 0.9
    assert (
        result["epochs"] == 5
        and result["trainable_params"] == 64 * 256 + 256 + 256 * 128 + 128 + 1290
    )
    assert result["best"]["metric"] == "val/loss" and 0 <= result["best"]["epoch"] < 5
    run = tmp_path / "run"
    assert (run / "checkpoints" / "best.ckpt").is_file() and (
        run / "checkpoints" / "last.ckpt"
    ).is_file()
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "test/acc"} <= set(header)


def test_huge_learning_rate_diverges_and_names_the_step(tmp_path):
    result = train(
        make_cfg(tmp_path, "optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=3"),
        tmp_path / "run",
    )
    assert result["status"] == "diverged"
    assert result["diverged"]["step"] >= 0 and "non-finite at step" in result["reason"]
    assert result["epochs"] <= 1


def test_nan_guard_reports_the_exact_first_bad_step():
    from lightning.pytorch.strategies import SingleDeviceStrategy

    class FakeTrainer:
        global_step = 0
        should_stop = False
        strategy = SingleDeviceStrategy("cpu")  # one process: the losses come back as they are

    guard, trainer = NanGuard(check_every_n_steps=4), FakeTrainer()
    for step, loss in enumerate([3.0, 2.0, 1.5, 1.2, 1.1, float("inf"), float("nan"), 1.0]):
        trainer.global_step = step + 1
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step)
    assert trainer.should_stop
    assert guard.diverged["step"] == 5
    assert guard.diverged["last_finite_loss"] == pytest.approx(1.1)


def test_early_stopping_stops_before_max_epochs(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "trainer.max_epochs=30",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=10",
    )
    result = train(cfg, tmp_path / "run")
    assert result["status"] == "stopped_early" and result["epochs"] == 2


def test_unknown_monitor_is_caught_before_training(tmp_path):
    with pytest.raises(ConfigError, match="never logged"):
        train(make_cfg(tmp_path, "callbacks.checkpoint.monitor=val/accuracy"), tmp_path / "run")
    with pytest.raises(ConfigError, match="scheduler.monitor"):
        train(
            make_cfg(tmp_path, "scheduler=plateau", "scheduler.monitor=valid/loss"),
            tmp_path / "run",
        )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resume_continues_epochs_and_optimizer_state(tmp_path):
    first = train(make_cfg(tmp_path, "trainer.max_epochs=2"), tmp_path / "run")
    steps_per_epoch = first["global_steps"] // 2
    cfg = make_cfg(
        tmp_path,
        "trainer.max_epochs=4",
        f"ckpt_path={tmp_path / 'run'}",
        f"paths.run_dir={tmp_path / 'resumed'}",
    )
    resumed = train(cfg, tmp_path / "resumed")
    assert resumed["epochs"] == 4 and resumed["global_steps"] == 4 * steps_per_epoch
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=False)
    adam_steps = {float(s["step"]) for s in state["optimizer_states"][0]["state"].values()}
    assert adam_steps == {4.0 * steps_per_epoch}
    assert state["epoch"] == 3


def test_last_checkpoint_is_the_final_epoch_even_when_the_best_is_earlier(tmp_path):
    # monitor_mode=max on val/loss: the "best" stays at epoch 0 while training goes on
    result = train(
        make_cfg(tmp_path, "trainer.max_epochs=3", "monitor_mode=max", "callbacks=[checkpoint]"),
        tmp_path / "run",
    )
    folder = tmp_path / "run" / "checkpoints"
    best = torch.load(folder / "best.ckpt", weights_only=False)
    last = torch.load(folder / "last.ckpt", weights_only=False)
    assert best["epoch"] == 0 and last["epoch"] == 2
    assert last["global_step"] == result["global_steps"]


# the judge of callbacks=sample_quality trains for minutes; tests/test_sample_quality.py covers it
NO_JUDGE = {"cgan": ["~callbacks.sample_quality", "monitor=val/loss", "monitor_mode=min"]}


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_presets_run_with_tiny_limits(tmp_path, name):
    # a preset that picks its own data (XOR, text, sequences) keeps it; the others run on digits
    own_data = "override /data" in (conf_dir() / "experiment" / f"{name}.yaml").read_text()
    cfg = make_cfg(
        tmp_path,
        *([x for x in FAST if not x.startswith("data=")] if own_data else []),
        f"experiment={name}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        *NO_JUDGE.get(name, []),
        fast=not own_data,
    )
    assert train(cfg, tmp_path / "run")["status"] == "completed"


@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_every_scheduler_trains(tmp_path, scheduler):
    cfg = make_cfg(
        tmp_path, f"scheduler={scheduler}", "trainer.max_epochs=2", "trainer.limit_train_batches=3"
    )
    assert train(cfg, tmp_path / "run")["status"] == "completed"


def test_exponential_decay_follows_the_formula(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "scheduler=exponential",
        "scheduler.decay_rate=0.5",
        "scheduler.decay_steps=10",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=20",
    )
    result = train(cfg, tmp_path / "run")
    # lr is logged at the epoch's last step, before that step's scheduler update: 19 decays
    assert math.isclose(result["metrics"]["lr"], 0.1 * 0.5 ** (19 / 10), rel_tol=1e-6)


def test_mse_loss_trains(tmp_path):
    result = train(make_cfg(tmp_path, "loss=mse", "trainer.max_epochs=3"), tmp_path / "run")
    assert result["metrics"]["val/acc"] > 0.5


def test_progress_is_one_line_per_epoch_when_not_a_terminal(tmp_path, capsys):
    from lightdl.callbacks.progress import EpochLines, progress_bar

    assert isinstance(progress_bar(), EpochLines)  # pytest captures stdout: not a terminal
    cfg = make_cfg(tmp_path, "trainer.max_epochs=2", "trainer.enable_progress_bar=true")
    train(cfg, tmp_path / "run")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("val/acc=" in line for line in lines)


def test_lightnings_hook_name_skips_module_bookkeeping_and_nothing_else_does(tmp_path):
    """BaseTask sets Lightning's `_current_fx_name` (~44 times a step) directly; every other
    attribute still goes through nn.Module, so parameters and submodules are registered."""
    from torch import nn

    cfg = make_cfg(tmp_path)
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    task._current_fx_name = "training_step"
    assert task._current_fx_name == "training_step" and "_current_fx_name" in task.__dict__
    task.extra = nn.Linear(2, 2)
    assert "extra" in task._modules and "extra" not in task.__dict__
