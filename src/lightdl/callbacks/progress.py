"""Progress: rich bars in a terminal; one plain line per epoch when output goes to a file or pipe."""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import ProgressBar


class EpochLines(ProgressBar):
    """Prints `epoch 3/10  train/loss=0.41 ... (2.1s)` once per epoch, and nothing per step."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        shown = "  ".join(
            f"{key}={float(metrics[key]):.4g}"
            for key in ("train/loss", "train/acc", "val/loss", "val/acc")
            if key in metrics
        )
        elapsed = time.perf_counter() - self._start
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {shown}  ({elapsed:.1f}s)",
            flush=True,
        )


def progress_bar() -> ProgressBar:
    """Rich progress bars when stdout is a terminal, epoch lines otherwise."""
    if sys.stdout.isatty():
        from lightning.pytorch.callbacks import RichProgressBar

        return RichProgressBar()
    return EpochLines()
