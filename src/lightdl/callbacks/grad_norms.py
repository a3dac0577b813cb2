"""GradNorms: per-layer gradient norms, averaged over an epoch, to see vanishing or exploding gradients."""

from __future__ import annotations

import lightning as L
import torch

from lightdl.init import weights


class GradNorms(L.Callback):
    """Logs grad_norm/layer_<i> (i = 0 is the layer nearest the input), grad_norm/first,
    grad_norm/last and grad_norm/first_over_last once per epoch.

    Norms are those of the weight gradients before clipping, sampled every `every_n_steps`
    optimizer steps and summed in a device tensor (no host sync per step).
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = every_n_steps
        self._sums: torch.Tensor | None = None
        self._count = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sums, self._count = None, 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        grads = [w.grad for w in weights(pl_module) if w.grad is not None]
        if not grads:
            return
        norms = torch.stack(torch._foreach_norm(grads)).detach()
        self._sums = norms if self._sums is None else self._sums + norms
        self._count += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._sums is None:
            return
        means = self._sums / self._count
        logged = {f"grad_norm/layer_{i}": v for i, v in enumerate(means)}
        logged["grad_norm/first"], logged["grad_norm/last"] = means[0], means[-1]
        logged["grad_norm/first_over_last"] = means[0] / means[-1].clamp_min(1e-30)
        pl_module.log_dict(logged, on_step=False, on_epoch=True, batch_size=1)
