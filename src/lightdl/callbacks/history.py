"""History: the epoch-level metrics of a run, kept on the host once per epoch."""

from __future__ import annotations

import math

import lightning as L


class History(L.Callback):
    """Records trainer.callback_metrics after each training epoch (validation included)."""

    def __init__(self, monitor: str, mode: str = "min") -> None:
        self.monitor, self.mode = monitor, mode
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        row = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if getattr(value, "numel", lambda: 1)() == 1
        }
        row["epoch"] = trainer.current_epoch
        self.epochs.append(row)

    def state_dict(self) -> dict:
        """Saved in checkpoints, so a resumed run's curves, diagnosis and best cover every epoch."""
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epochs = list(state_dict.get("epochs", []))

    def last(self) -> dict[str, float]:
        """Metrics of the last completed epoch."""
        return {k: v for k, v in self.epochs[-1].items() if k != "epoch"} if self.epochs else {}

    def best(self) -> dict | None:
        """{"metric", "value", "epoch"} of the best finite monitored value, or None."""
        seen = [r for r in self.epochs if self.monitor in r and math.isfinite(r[self.monitor])]
        if not seen:
            return None
        pick = min if self.mode == "min" else max
        row = pick(seen, key=lambda r: r[self.monitor])
        return {"metric": self.monitor, "value": row[self.monitor], "epoch": row["epoch"]}
