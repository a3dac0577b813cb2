"""Atomic checkpoints: a process killed while writing last.ckpt leaves the previous checkpoint
whole and loadable (lightdl.checkpoint_io writes beside it and renames)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import torch
from conftest import quiet_env

EVERY = "callbacks.checkpoint_last.every_n_train_steps=7"  # mid-epoch: 20 batches an epoch

# Runs lightdl with the second write of last.ckpt slowed down: half the bytes, then a long sleep
# (a marker file says the write has begun), so the test can kill the process inside the save.
SLOW_SAVE = """
import pathlib, sys, time
import torch
marker, real_save, writes = pathlib.Path(sys.argv[1]), torch.save, []
def slow_save(obj, f, *args, **kwargs):
    name = getattr(f, "name", "")
    if ".last.ckpt." in str(name):
        writes.append(name)
        if len(writes) == 2:
            import io
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            marker.touch()
            time.sleep(600)
    return real_save(obj, f, *args, **kwargs)
torch.save = slow_save
from lightdl.app import run_cli
sys.argv = ["lightdl", *sys.argv[2:]]
sys.exit(run_cli())
"""


def test_a_kill_inside_a_checkpoint_save_leaves_the_previous_checkpoint_whole(tmp_path):
    marker, run_dir = tmp_path / "saving", tmp_path / "run"
    args = ["data=digits", "trainer.max_epochs=3", f"hydra.run.dir={run_dir}"]
    env = {**quiet_env(), "LIGHTDL_OUTPUTS": str(tmp_path / "outputs")}
    victim = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, str(marker), *args, EVERY],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the slowed save never began"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 7  # the first save, whole; the second never replaced it
    half = list((run_dir / "checkpoints").glob(".last.ckpt.*.tmp"))
    assert len(half) == 1 and half[0].stat().st_size > 0  # the half-written one, beside it
