"""A Lightning callback that notes when the first optimizer step is done, then ends the process.

startup_time.py injects it into an unchanged `python -m lightdl` run through a Hydra override,

    +callbacks.first_step._target_=first_step.FirstStepExit +callbacks.first_step.path=<file>

with benchmarks/ on PYTHONPATH, so launch-to-first-step is measured on the real CLI without a
benchmark-only switch in lightdl. At the end of the first training batch (forward, backward and
optimizer step done) it writes time.time() to `path` and leaves with os._exit(0): no test, no
checkpoint, no summary, since what comes after the first step is not being measured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L


class FirstStepExit(L.Callback):
    """Writes the wall-clock time of the end of the first training batch to `path`, then exits."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            import torch

            torch.cuda.synchronize()  # the step is done, not only queued
        now = time.time()
        self.path.write_text(f"{now:.6f} {trainer.global_step}\n")
        os._exit(0)
