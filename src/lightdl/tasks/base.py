"""BaseTask: what every lightdl LightningModule shares (optimizer, lr schedule, regularizer hooks)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from lightdl.errors import ConfigError
from lightdl.init import weights
from lightdl.regularizers import Regularizer, overrides


class BaseTask(L.LightningModule):
    """Owns `net`, builds the optimizer and lr scheduler from their factories, and runs the
    regularizers' penalty, input-transform and before-optimizer-step hooks.

    Subclasses implement the steps and list what they log in `logged_metrics` (checked against
    every `monitor` before training starts).
    """

    base_metrics: tuple[str, ...] = ("train/loss", "val/loss", "lr")
    loss_diagnoses_fit = True  # a rising val/loss over a falling train/loss means overfitting
    steps_per_call = 1  # optimizer steps per training_step call (trainer.steps_per_call)
    _last_in_chunk = True

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str | None = None,
        regularizers: Sequence[Regularizer] = (),
        eval_loss_fn: nn.Module | None = None,
        augment: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
    ) -> None:
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn
        self.eval_loss_fn = eval_loss_fn if eval_loss_fn is not None else loss_fn
        self.augment = list(augment)  # training batches only, on the batch's device
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.penalties = [r for r in regularizers if overrides(r, "penalty")]
        self.input_transforms = [r for r in regularizers if overrides(r, "transform_input")]
        self.step_hooks = [r for r in regularizers if overrides(r, "before_optimizer_step")]
        self.penalized = weights(net) if self.penalties or self.step_hooks else []
        self.clipping = {  # the clip regularizers' Trainer settings, applied here if manual
            key: value
            for regularizer in regularizers
            for key, value in regularizer.trainer_kwargs().items()
            if key.startswith("gradient_clip")
        }

    def set_steps_per_call(self, steps: int) -> None:
        """Run `steps` optimizer steps per Lightning training_step call (trainer.steps_per_call).

        The DataModule then hands the task lists of `steps` batches; the task steps the
        optimizer itself (Lightning's manual optimization) through Lightning's own optimizer
        wrapper, so global_step, the precision plugin and every on_before_optimizer_step hook see
        each step. Gradient clipping, lr schedulers and max_steps, which Lightning applies only
        under automatic optimization, are applied here per step. Lightning's fixed cost per call
        (~0.6 ms on a 2-core CPU) is then paid once per chunk instead of once per batch.
        """
        if steps == 1:
            return
        if not self.automatic_optimization:
            raise ConfigError(
                f"trainer.steps_per_call={steps} needs a task whose one optimizer Lightning "
                f"steps, but {type(self).__name__} steps its optimizers itself; leave "
                "trainer.steps_per_call=1."
            )
        self.steps_per_call = steps
        self.automatic_optimization = False

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints carry the random generators' states (lightdl.rng), for an exact resume."""
        from lightdl import rng

        checkpoint["rng_states"] = rng.capture()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if "rng_states" in checkpoint and fitting:  # resuming training, not re-testing
            from lightdl import rng

            rng.restore(checkpoint["rng_states"])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.steps_per_call == 1:
            return self.train_step(batch, batch_idx)
        return self._train_chunk(batch, batch_idx)

    def train_step(self, batch, batch_idx: int) -> torch.Tensor:
        """One batch's loss (penalties included), with the task's own accumulation and logging."""
        raise NotImplementedError

    def _train_chunk(self, chunk: list, batch_idx: int) -> torch.Tensor:
        """Train on each batch of `chunk` in turn; the losses stacked (NanGuard watches them)."""
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self.scheduler_interval == "step" else None
        max_steps = self.trainer.max_steps
        losses = []
        for i, batch in enumerate(chunk):
            self._last_in_chunk = i + 1 == len(chunk)
            loss = self.train_step(batch, batch_idx)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()  # the callbacks' and our on_before_optimizer_step run inside
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.detach())
            if 0 <= max_steps <= self.trainer.global_step:
                break
        self._last_in_chunk = True
        return torch.stack(losses)

    def on_train_epoch_end(self) -> None:
        """Under trainer.steps_per_call > 1, step an epoch-interval lr schedule (after
        validation, with its monitored metric for reduce_on_plateau), as Lightning would."""
        if self.steps_per_call == 1 or self.scheduler_factory is None:
            return
        if self.scheduler_interval != "epoch":  # step-interval ones: in _train_chunk
            return
        scheduler = self.lr_schedulers()
        if not self.scheduler_monitor:
            scheduler.step()
        elif self.scheduler_monitor in self.trainer.callback_metrics:
            scheduler.step(self.trainer.callback_metrics[self.scheduler_monitor])

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        """Keyword arguments this task takes from the composed config and the DataModule, beyond
        the shared ones (net, losses, optimizer, scheduler, regularizers, augment)."""
        return {}

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        return self.base_metrics + (("train/penalty",) if self.penalties else ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def __setattr__(self, name: str, value: Any) -> None:
        """Lightning names the running hook in `_current_fx_name` about 44 times per training
        step; nn.Module.__setattr__ checks every assignment against parameters, buffers and
        submodules (~5 us each here). A plain string needs none of that: set it directly. This
        saved ~230 us per step (a quarter of Lightning's per-step cost on the 2-core CPU)."""
        if name == "_current_fx_name":
            self.__dict__[name] = value
            return
        super().__setattr__(name, value)

    def transformed(self, x: torch.Tensor) -> torch.Tensor:
        """A training batch's inputs after augmentation and input-noise regularizers."""
        for transform in self.augment:
            x = transform(x)
        for regularizer in self.input_transforms:
            x = regularizer.transform_input(x, self.trainer)
        return x

    def penalty(self) -> torch.Tensor | int:
        return sum(r.penalty(self.penalized) for r in self.penalties) if self.penalties else 0

    def is_last_batch(self, batch_idx: int) -> bool:
        """The epoch's last batch (under steps_per_call > 1: the last batch of the last chunk)."""
        return batch_idx + 1 == self.trainer.num_training_batches and self._last_in_chunk

    def log_epoch(self, name: str, value: torch.Tensor | float) -> None:
        """One value for the epoch (already reduced by the caller): no per-step logging cost.
        Under DDP it is the mean over the ranks (equal shares of the training split each)."""
        self.log(name, value, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)

    def log_lr(self) -> None:
        self.log_epoch("lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        for regularizer in self.step_hooks:
            regularizer.before_optimizer_step(optimizer, self.penalized)
        if self.steps_per_call > 1 and self.clipping:  # Lightning clips only automatic steps
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.clipping["gradient_clip_val"],
                gradient_clip_algorithm=self.clipping["gradient_clip_algorithm"],
            )

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        factory = self.scheduler_factory
        if (
            "total_steps" in inspect.signature(factory).parameters
        ):  # warmup_cosine, onecycle, linear
            factory = functools.partial(factory, total_steps=self._total_steps())
        if self.steps_per_call > 1:  # stepped by this task (manual optimization)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": factory(optimizer)}}
        config = {"scheduler": factory(optimizer), "interval": self.scheduler_interval}
        if self.scheduler_monitor:
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _total_steps(self) -> int:
        """Optimizer steps in the whole fit: Lightning's estimate counts training_step calls,
        which under steps_per_call > 1 are chunks of batches."""
        calls = int(self.trainer.estimated_stepping_batches)  # also loads the train dataloader
        if self.steps_per_call == 1:
            return calls
        chunks = self.trainer.train_dataloader
        per_epoch = min(len(chunks.batches), self.trainer.num_training_batches * chunks.size)
        epochs, max_steps = self.trainer.max_epochs, self.trainer.max_steps
        if epochs is None or epochs < 0:  # bounded by max_steps alone
            return max_steps
        return per_epoch * epochs if max_steps < 0 else min(per_epoch * epochs, max_steps)


class SummedEvalTask(BaseTask):
    """A task whose validation and test metrics are sums kept on the device (`eval_sums`),
    zeroed at the start of each pass and turned into metrics once at its end.

    Subclasses register the `eval_sums` buffer and implement `_eval_step(batch)` (add to the
    sums) and `_log_eval(split)` (log "val/..." or "test/..." from them).
    """

    def _eval_start(self) -> None:
        self.eval_sums.zero_()

    def _eval_step(self, batch) -> None:
        raise NotImplementedError

    def _log_eval(self, split: str) -> None:
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")
