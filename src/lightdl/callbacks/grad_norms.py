"""GradNorms: per-layer gradient norms, averaged over an epoch, to see vanishing or exploding gradients."""

from __future__ import annotations

import lightning as L
import torch

from lightdl.init import weights


class GradNorms(L.Callback):
    """Logs grad_norm/layer_<i> (i = 0 is the layer nearest the input), grad_norm/first,
    grad_norm/last and grad_norm/first_over_last once per epoch, and the norm over all weights
    together: its epoch mean grad_norm/total and largest value grad_norm/max (exploding
    gradients show as spikes in grad_norm/max long before the mean moves).

    Norms are those of the weight gradients before clipping, sampled every `every_n_steps`
    optimizer steps and summed in a device tensor (no host sync per step).
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = every_n_steps
        self._sums: torch.Tensor | None = None
        self._total: torch.Tensor | None = None  # [sum of global norms, largest global norm]
        self._count = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sums, self._total, self._count = None, None, 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        grads = [w.grad for w in weights(pl_module) if w.grad is not None]
        if not grads:
            return
        norms = torch.stack(torch._foreach_norm(grads)).detach()
        total = norms.square().sum().sqrt()
        self._sums = norms if self._sums is None else self._sums + norms
        pair = torch.stack([total, total])
        if self._total is None:
            self._total = pair
        else:
            self._total = torch.stack(
                [self._total[0] + total, torch.maximum(self._total[1], total)]
            )
        self._count += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._sums is None:
            return
        means = self._sums / self._count
        logged = {f"grad_norm/layer_{i}": v for i, v in enumerate(means)}
        logged["grad_norm/first"], logged["grad_norm/last"] = means[0], means[-1]
        logged["grad_norm/first_over_last"] = means[0] / means[-1].clamp_min(1e-30)
        logged["grad_norm/total"] = self._total[0] / self._count
        logged["grad_norm/max"] = self._total[1]
        pl_module.log_dict(logged, on_step=False, on_epoch=True, batch_size=1)
