"""ClassificationTask: any nn.Module mapping inputs to class scores, trained with a loss from the `loss` group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lightdl.init import weights
from lightdl.regularizers import Regularizer


class ClassificationTask(L.LightningModule):
    """Trains `net` on (x, y) batches; logs loss and accuracy per split and the learning rate.

    Train metrics accumulate on the device and are reduced once per epoch: no host sync per step.
    """

    logged_metrics = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str | None = None,
        regularizers: Sequence[Regularizer] = (),
    ) -> None:
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.penalties = [r for r in regularizers if type(r).penalty is not Regularizer.penalty]
        self.penalized = weights(net) if self.penalties else []
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _shared_step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = self.loss_fn(logits, y)
        accuracy = getattr(self, f"{split}_acc")
        accuracy.update(logits, y)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log(f"{split}/acc", accuracy, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._shared_step(batch, "train")
        for regularizer in self.penalties:
            loss = loss + regularizer.penalty(self.penalized)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_epoch=True)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        config = {
            "scheduler": self.scheduler_factory(optimizer),
            "interval": self.scheduler_interval,
        }
        if self.scheduler_monitor:
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}
