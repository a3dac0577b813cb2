"""Exact resume: a run stopped mid-epoch and resumed from its last checkpoint ends with weights
bit-identical to a run that was never stopped (data order, generators, optimizer and schedule)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import make_cfg, quiet_env

from lightdl import build
from lightdl.train import train

EVERY = "callbacks.checkpoint_last.every_n_train_steps=7"  # mid-epoch: 20 batches an epoch


class Stop(L.Callback):
    """Ends the run with an error right after step `step` (a crash after the checkpoint at 7)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError("stopped")


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize(
    "overrides",
    [
        [EVERY],
        [EVERY, "regularizer=dropout", "scheduler=step"],
        ["trainer.steps_per_call=3", "callbacks.checkpoint_last.every_n_train_steps=6"],
    ],
    ids=["plain", "dropout-and-schedule", "steps_per_call"],
)
def test_a_run_resumed_mid_epoch_ends_bit_identical(tmp_path, monkeypatch, overrides):
    common = [*overrides, "trainer.max_epochs=2", "trainer.deterministic=true"]
    train(make_cfg(tmp_path / "whole", *common), tmp_path / "whole" / "run")

    stopped = tmp_path / "stopped" / "run"
    real = build.build_trainer
    monkeypatch.setattr(
        build, "build_trainer", lambda cfg, cbs, *rest: real(cfg, [*cbs, Stop(10)], *rest)
    )
    with pytest.raises(RuntimeError, match="stopped"):
        train(make_cfg(tmp_path / "stopped", *common), stopped)
    monkeypatch.setattr(build, "build_trainer", real)
    saved = torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] in (6, 7)  # mid-epoch: the first epoch has 20 steps
    resumed = train(make_cfg(tmp_path / "stopped", *common, f"ckpt_path={stopped}"), stopped)

    whole, again = final_weights(tmp_path / "whole" / "run"), final_weights(stopped)
    assert resumed["global_steps"] == 40
    assert all(torch.equal(whole[k], again[k]) for k in whole)


def test_without_the_data_position_the_resumed_run_differs(tmp_path, monkeypatch):
    """The check above can fail: forgetting where the epoch stopped changes the weights."""
    from lightdl.data.batches import TensorBatches

    common = ["trainer.max_epochs=2", EVERY, "trainer.deterministic=true"]
    train(make_cfg(tmp_path / "whole", *common), tmp_path / "whole" / "run")
    stopped = tmp_path / "stopped" / "run"
    real = build.build_trainer
    monkeypatch.setattr(
        build, "build_trainer", lambda cfg, cbs, *rest: real(cfg, [*cbs, Stop(10)], *rest)
    )
    with pytest.raises(RuntimeError):
        train(make_cfg(tmp_path / "stopped", *common), stopped)
    monkeypatch.setattr(build, "build_trainer", real)
    monkeypatch.setattr(TensorBatches, "load_state_dict", lambda self, state: None)
    train(make_cfg(tmp_path / "stopped", *common, f"ckpt_path={stopped}"), stopped)
    whole, again = final_weights(tmp_path / "whole" / "run"), final_weights(stopped)
    assert not all(torch.equal(whole[k], again[k]) for k in whole)


def run(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**quiet_env(), "LIGHTDL_OUTPUTS": str(tmp_path / "outputs")}
    command = [sys.executable, "-m", "lightdl", "data=digits", "trainer.enable_progress_bar=false"]
    return subprocess.Popen(
        [*command, "trainer.deterministic=true", "regularizer=dropout", EVERY, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    epochs = "trainer.max_epochs=12"
    whole = tmp_path / "whole"
    done = run(tmp_path, epochs, f"hydra.run.dir={whole}")
    assert done.wait(timeout=300) == 0, done.stderr.read()[-2000:]

    killed = tmp_path / "killed"
    victim = run(tmp_path, epochs, f"hydra.run.dir={killed}")
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 1.0))  # a random step after the first checkpoint
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before the kill; make it longer"
    step = torch.load(last, weights_only=True)["global_step"]  # the last save is whole
    resumed = run(tmp_path, epochs, "ckpt_path=last", f"hydra.run.dir={killed}")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    a, b = final_weights(whole), final_weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a), f"killed after step {step}"
