"""GradNorms: per-layer gradient norms, averaged over an epoch, to see vanishing or exploding gradients."""

from __future__ import annotations

import logging
import math

import lightning as L
import torch

from lightdl.init import weights

log = logging.getLogger("lightdl")


class GradNorms(L.Callback):
    """Logs grad_norm/layer_<i> (i = 0 is the layer nearest the input), grad_norm/first,
    grad_norm/last and grad_norm/first_over_last once per epoch, and the norm over all weights
    together: its epoch mean grad_norm/total and largest value grad_norm/max (exploding
    gradients show as spikes in grad_norm/max long before the mean moves).

    Norms are those of the weight gradients before clipping, sampled every `every_n_steps`
    optimizer steps and summed in a device tensor (no host sync per step).

    At each epoch end (one host sync per epoch) it warns, once per run and kind, when
    first_over_last is below `vanishing_ratio` (the first layer learns that many times slower
    than the last: vanishing gradients) or grad_norm/max is above `exploding_norm` or not
    finite (exploding gradients). The warnings are kept in `warnings` for summary.json.
    The options are checked by lightdl.validate before anything is built.
    """

    logged_metrics = (
        "grad_norm/first",
        "grad_norm/last",
        "grad_norm/first_over_last",
        "grad_norm/total",
        "grad_norm/max",
    )

    def __init__(
        self, every_n_steps: int = 1, vanishing_ratio: float = 1e-3, exploding_norm: float = 1e3
    ) -> None:
        self.every_n_steps = every_n_steps
        self.vanishing_ratio, self.exploding_norm = float(vanishing_ratio), float(exploding_norm)
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._sums: torch.Tensor | None = None
        self._total: torch.Tensor | None = None  # [sum of global norms, largest global norm]
        self._count = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sums, self._total, self._count = None, None, 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        params = weights(pl_module)
        if all(w.grad is None for w in params):
            return
        # a weight without a gradient this step (GANs step D and G apart) counts as norm 0, so
        # the per-layer sums keep one entry per weight
        grads = [w.grad if w.grad is not None else w.new_zeros(1) for w in params]
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
        ratio = means[0] / means[-1].clamp_min(1e-30)
        logged = {f"grad_norm/layer_{i}": v for i, v in enumerate(means)}
        logged["grad_norm/first"], logged["grad_norm/last"] = means[0], means[-1]
        logged["grad_norm/first_over_last"] = ratio
        logged["grad_norm/total"] = self._total[0] / self._count
        logged["grad_norm/max"] = self._total[1]
        pl_module.log_dict(logged, on_step=False, on_epoch=True, batch_size=1)
        first_over_last = (
            float(ratio) if len(means) > 1 else math.inf
        )  # one layer: nothing to vanish
        self._check(trainer.current_epoch, first_over_last, float(self._total[1]))

    def _check(self, epoch: int, ratio: float, peak: float) -> None:
        """Warn once per kind: vanishing (first/last below the ratio), exploding (peak too large)."""
        if ratio < self.vanishing_ratio:
            self._warn(
                "vanishing",
                f"vanishing gradients: in epoch {epoch} the first layer's gradient norm was "
                f"{ratio:.1e} times the last layer's (below vanishing_ratio={self.vanishing_ratio:g}); "
                "the first layers barely learn (try activation=relu with init=he_normal, or "
                "regularizer=batchnorm).",
            )
        if not math.isfinite(peak) or peak > self.exploding_norm:
            self._warn(
                "exploding",
                f"exploding gradients: in epoch {epoch} the gradient norm reached {peak:.3g} "
                f"(above exploding_norm={self.exploding_norm:g}); try regularizer=clip_norm or a "
                "smaller optimizer.lr.",
            )

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        self.warnings.append(message)
        log.warning(message)
