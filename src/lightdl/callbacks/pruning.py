"""MagnitudePruning: zero the smallest weights, gradually or at once, and keep them zero.

Not to be confused with lightdl.search.pruning, which stops unpromising Optuna trials.
"""

from __future__ import annotations

import lightning as L

from lightdl.callbacks import masks
from lightdl.errors import ConfigError


class MagnitudePruning(L.Callback):
    """Magnitude pruning of Linear and Conv weights to `sparsity` (Zhu & Gupta's gradual schedule).

    Before epochs start_epoch..end_epoch the mask grows to
    sparsity * (1 - (1 - j/n)^power), j = epoch - start_epoch + 1, n = end_epoch - start_epoch + 1,
    so it reaches `sparsity` at end_epoch and is kept until the end; start_epoch == end_epoch
    prunes in one shot. scope=global ranks all weights together (layers end up unequally
    sparse), scope=layer prunes each layer to the same fraction. Every layer is pruned, the
    output layer included. When training ends the masks are made permanent: plain weights with
    zeros. Logs `sparsity` each epoch, the fraction of pruned weights that are exactly zero.
    """

    logged_metrics = ("sparsity",)

    def __init__(
        self,
        sparsity: float = 0.8,
        scope: str = "global",
        start_epoch: int = 1,
        end_epoch: int = 4,
        power: float = 3.0,
    ) -> None:
        masks.check_fraction("callbacks.pruning.sparsity", sparsity)
        masks.check_scope("callbacks.pruning.scope", scope)
        masks.check_epochs("callbacks.pruning.start_epoch", start_epoch, 0)
        masks.check_epochs("callbacks.pruning.end_epoch", end_epoch, start_epoch)
        if isinstance(power, bool) or not isinstance(power, int | float) or power <= 0:
            raise ConfigError(f"callbacks.pruning.power must be a number > 0, got {power!r}.")
        self.sparsity, self.scope, self.power = float(sparsity), scope, float(power)
        self.start_epoch, self.end_epoch = start_epoch, end_epoch
        self.pairs: list[masks.Pair] = []
        self.warnings: list[str] = []
        self._applied: float | None = None  # the target the current mask was made for

    def target(self, epoch: int) -> float:
        """The sparsity epoch `epoch` trains at."""
        if epoch < self.start_epoch:
            return 0.0
        steps = self.end_epoch - self.start_epoch + 1
        done = min(epoch - self.start_epoch + 1, steps) / steps
        return self.sparsity * (1.0 - (1.0 - done) ** self.power)

    def setup(self, trainer, pl_module, stage: str) -> None:
        masks.check_single(trainer, self)
        self.pairs = masks.prunable(pl_module)
        epochs = trainer.max_epochs
        if stage == "fit" and self.sparsity and epochs and 0 < epochs <= self.end_epoch:
            masks.warn(
                self,
                "callbacks.pruning.end_epoch=%d is not below trainer.max_epochs=%d: the run ends at "
                "sparsity %.3g, not %.3g.",
                self.end_epoch,
                epochs,
                self.target(epochs - 1),
                self.sparsity,
            )

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        target = self.target(trainer.current_epoch)
        if target == 0 or target == self._applied:
            return
        before = int(masks.zero_count(self.pairs))  # one host sync, only when the mask changes
        masks.apply_masks(self.pairs, target, self.scope, trainer.optimizers)
        self._applied = target
        if int(masks.zero_count(self.pairs)) != before:  # not on a resume at the same sparsity
            masks.restart_monitors(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sparsity = masks.zero_count(self.pairs) / masks.total_count(self.pairs)
        pl_module.log("sparsity", sparsity.float(), on_step=False, on_epoch=True, batch_size=1)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        masks.fold_masks(checkpoint["state_dict"])

    def on_train_end(self, trainer, pl_module) -> None:
        masks.unmask(self.pairs)
