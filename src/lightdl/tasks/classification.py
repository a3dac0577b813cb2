"""ClassificationTask: any nn.Module mapping inputs to class scores, trained with a loss from the `loss` group."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lightdl.regularizers import Regularizer
from lightdl.tasks.base import BaseTask


class ClassificationTask(BaseTask):
    """Trains `net` on (x, y) batches; logs loss and accuracy per split and the learning rate.

    Training loss and accuracy are summed in a device tensor (no host sync, no per-step
    `self.log`, which costs about 0.4 ms a call) and logged once, at the epoch's last batch.
    Validation and test use torchmetrics through `self.log`: they run on few, large batches.
    """

    base_metrics = ("train/loss", "train/acc", "val/loss", "val/acc", "lr")

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
        eval_loss_fn: nn.Module | None = None,
        train_probe: tuple[torch.Tensor, torch.Tensor] | None = None,
        augment: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
    ) -> None:
        super().__init__(
            net,
            loss_fn,
            optimizer,
            scheduler,
            scheduler_interval,
            scheduler_monitor,
            regularizers,
            eval_loss_fn,
            augment,
        )
        self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(2)
        )
        # a model's own extra training term (capsnet's reconstruction), from its last forward pass
        self.has_aux = bool(getattr(net, "has_auxiliary_loss", False))
        # [sum of loss * batch size, correct predictions, examples, sum of penalty, sum of aux]
        self.register_buffer("train_sums", torch.zeros(5), persistent=False)
        # a fixed sample of the training split, scored in eval mode after each validation pass
        self.has_probe = train_probe is not None
        if self.has_probe:
            self.register_buffer("probe_x", train_probe[0], persistent=False)
            self.register_buffer("probe_y", train_probe[1], persistent=False)

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        return (
            self.base_metrics
            + (("train/penalty",) if self.penalties else ())
            + (("train/aux_loss",) if self.has_aux else ())
            + (("train/eval_acc", "train/eval_loss") if self.has_probe else ())
        )

    def _eval_step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = self.eval_loss_fn(logits, y)
        accuracy = getattr(self, f"{split}_acc")
        accuracy.update(logits, y)
        self.log(
            f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y), sync_dist=True
        )
        self.log(f"{split}/acc", accuracy, on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    def train_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = self.transformed(x)
        logits = self.net(x)
        loss = self.loss_fn(logits, y)
        penalty = self.penalty()
        aux = self.net.auxiliary_loss(x, y) if self.has_aux else 0
        with torch.no_grad():
            self.train_sums[0] += loss.detach() * len(y)
            self.train_sums[1] += (logits.argmax(dim=-1) == y).sum()
            self.train_sums[2] += len(y)
            if self.penalties:
                self.train_sums[3] += penalty.detach() * len(y)
            if self.has_aux:
                self.train_sums[4] += aux.detach() * len(y)
        if self.is_last_batch(batch_idx):
            self._log_train_epoch()
        return loss + penalty + aux

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Accuracy and loss on the training probe in eval mode (dropout off, batchnorm running
        statistics): the train side of an honest train/validation gap. train/acc, by contrast, is
        the running mean over the epoch in train mode."""
        if not self.has_probe:
            return
        correct = torch.zeros((), device=self.probe_y.device)
        loss = torch.zeros((), device=self.probe_y.device)
        for x, y in zip(self.probe_x.split(256), self.probe_y.split(256), strict=True):
            logits = self.net(x)
            correct += (logits.argmax(dim=-1) == y).sum()
            loss += self.eval_loss_fn(logits, y) * len(y)
        n = len(self.probe_y)
        self.log(
            "train/eval_acc",
            correct / n,
            on_step=False,
            on_epoch=True,
            batch_size=1,
            sync_dist=True,
        )
        self.log(
            "train/eval_loss", loss / n, on_step=False, on_epoch=True, batch_size=1, sync_dist=True
        )

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_train_epoch(self) -> None:
        """Epoch means of the training loss (without penalties), accuracy and penalty, and the lr.

        train/loss is the data loss alone so runs with and without a penalty compare directly;
        the penalty added to it for the gradient is logged as train/penalty.
        """
        loss_sum, correct, count, penalty_sum, aux_sum = self.train_sums
        self.log_epoch("train/loss", loss_sum / count)
        self.log_epoch("train/acc", correct / count)
        if self.penalties:
            self.log_epoch("train/penalty", penalty_sum / count)
        if self.has_aux:
            self.log_epoch("train/aux_loss", aux_sum / count)
        self.log_lr()
