"""NanGuard: stop training at the first non-finite loss and say where it happened."""

from __future__ import annotations

import logging

import lightning as L
import torch

log = logging.getLogger(__name__)


class NanGuard(L.Callback):
    """Watches the training loss for NaN/inf without a host sync per step.

    Each step's loss tensor is kept (no copy to the host); every `check_every_n_steps` steps and at
    each epoch end the window is stacked and checked in one sync, so the step named is exact.
    After a stop, `diverged` holds {"step": int, "last_finite_loss": float | None}.
    """

    def __init__(self, check_every_n_steps: int = 20) -> None:
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        self.diverged: dict | None = None
        self._window: list[torch.Tensor] = []
        self._window_start = 0
        self._window_steps = 0  # losses in the window (a chunk holds several)
        self._last_finite: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or self.diverged is not None:
            return
        loss = loss.detach().reshape(-1)  # one loss per step; several under steps_per_call > 1
        if not self._window:
            self._window_start = trainer.global_step - len(loss)
        self._window.append(loss)
        self._window_steps += len(loss)
        if self._window_steps >= self.check_every_n_steps:
            self._check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer)

    def _check(self, trainer) -> None:
        if not self._window:
            return
        losses = torch.cat(self._window).double()
        # every DDP rank checks the same steps: the mean over ranks is non-finite where any rank's
        # loss was, so all ranks stop together (a single process gets its losses back as they are)
        losses = trainer.strategy.reduce(losses, reduce_op="mean").cpu()
        self._window, self._window_steps = [], 0
        finite = torch.isfinite(losses)
        if bool(finite.all()):
            self._last_finite = float(losses[-1])
            return
        first = int((~finite).nonzero()[0])
        if first > 0:
            self._last_finite = float(losses[first - 1])
        self.diverged = {"step": self._window_start + first, "last_finite_loss": self._last_finite}
        trainer.should_stop = True
        log.error(self.message())

    def message(self) -> str:
        if self.diverged is None:
            return ""
        last = self.diverged["last_finite_loss"]
        before = f"last finite loss {last:.6g}" if last is not None else "no finite loss before it"
        return f"training loss became non-finite at step {self.diverged['step']} ({before})"
