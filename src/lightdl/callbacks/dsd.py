"""DenseSparseDense: DSD training (Han et al. 2017): train dense, prune and train sparse, re-grow."""

from __future__ import annotations

import lightning as L

from lightdl.callbacks import masks
from lightdl.errors import ConfigError

DENSE, SPARSE, REDENSE = 0, 1, 2
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")  # what torch's schedulers read a group's lr from


class DenseSparseDense(L.Callback):
    """Three phases, by epoch: `dense_epochs` of ordinary training; `sparse_epochs` with the
    smallest-magnitude `sparsity` of the Linear and Conv weights masked to zero (per layer with
    scope=layer, as in the paper, or over all layers with scope=global); then the mask is
    removed and the rest of the run trains densely, the pruned weights restarting from exactly
    zero (their optimizer state too) and the learning rate multiplied by `redense_lr_scale`.

    The final model is dense. Logs `sparsity` (fraction of those weights that are exactly zero)
    and `dsd/phase` (0 dense, 1 sparse, 2 re-dense) every epoch. Each phase change restarts
    the monitored checkpoint and early stopping, so best.ckpt comes from the last phase reached.
    """

    logged_metrics = ("sparsity", "dsd/phase")

    def __init__(
        self,
        dense_epochs: int = 3,
        sparse_epochs: int = 3,
        sparsity: float = 0.5,
        scope: str = "layer",
        redense_lr_scale: float = 0.1,
    ) -> None:
        masks.check_epochs("callbacks.dsd.dense_epochs", dense_epochs, 1)
        masks.check_epochs("callbacks.dsd.sparse_epochs", sparse_epochs, 1)
        masks.check_fraction("callbacks.dsd.sparsity", sparsity)
        masks.check_scope("callbacks.dsd.scope", scope)
        scale = redense_lr_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
            raise ConfigError(
                f"callbacks.dsd.redense_lr_scale must be a number > 0, got {scale!r}."
            )
        self.dense_epochs, self.sparse_epochs = dense_epochs, sparse_epochs
        self.sparsity, self.scope, self.redense_lr_scale = float(sparsity), scope, float(scale)
        self.pairs: list[masks.Pair] = []
        self.warnings: list[str] = []
        self._phase = DENSE  # the phase last entered; saved in checkpoints so a resume knows it
        self._lr_scaled = False

    def phase(self, epoch: int) -> int:
        if epoch < self.dense_epochs:
            return DENSE
        return SPARSE if epoch < self.dense_epochs + self.sparse_epochs else REDENSE

    def setup(self, trainer, pl_module, stage: str) -> None:
        masks.check_single(trainer, self)
        self.pairs = masks.prunable(pl_module)
        epochs, redense = trainer.max_epochs, self.dense_epochs + self.sparse_epochs
        if stage == "fit" and epochs and 0 < epochs <= redense:
            masks.warn(
                self,
                "callbacks.dsd: dense_epochs + sparse_epochs = %d is not below trainer.max_epochs=%d, "
                "so the run ends before the re-dense phase.",
                redense,
                epochs,
            )

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        phase = self.phase(trainer.current_epoch)
        if phase == SPARSE and self.sparsity and not masks.is_masked(self.pairs):
            masks.apply_masks(self.pairs, self.sparsity, self.scope, trainer.optimizers)
        if phase == REDENSE:
            masks.unmask(self.pairs)
            if not self._lr_scaled:
                self._scale_lr(trainer)
        if phase != self._phase:
            masks.restart_monitors(trainer)
            self._phase = phase

    def _scale_lr(self, trainer) -> None:
        """Lower the optimizer's learning rate, and the base rates schedules compute it from."""
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                for key in LR_KEYS:
                    if isinstance(group.get(key), int | float):
                        group[key] *= self.redense_lr_scale
        for config in trainer.lr_scheduler_configs:
            if hasattr(config.scheduler, "base_lrs"):
                config.scheduler.base_lrs = [
                    lr * self.redense_lr_scale for lr in config.scheduler.base_lrs
                ]
        self._lr_scaled = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sparsity = masks.zero_count(self.pairs) / masks.total_count(self.pairs)
        logged = {"sparsity": sparsity.float(), "dsd/phase": float(self._phase)}
        pl_module.log_dict(logged, on_step=False, on_epoch=True, batch_size=1)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        masks.fold_masks(checkpoint["state_dict"])

    def on_train_end(self, trainer, pl_module) -> None:
        masks.unmask(self.pairs)

    def state_dict(self) -> dict:
        return {"phase": self._phase, "lr_scaled": self._lr_scaled}

    def load_state_dict(self, state_dict: dict) -> None:
        self._phase, self._lr_scaled = state_dict["phase"], state_dict["lr_scaled"]
