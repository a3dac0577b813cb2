"""ReconstructionTask: trains an autoencoder or VAE to reproduce its input images; labels unused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.errors import ConfigError
from lightdl.paths import chosen
from lightdl.tasks.base import SummedEvalTask

EVAL_SEED = 1234  # the VAE's val and test codes: the same draws every pass, so val/loss compares


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between pixels x in [0, 1] and sigmoid(logits), summed over each
    example's pixels: (N,). It is -log p(x|z) for independent Bernoulli pixels (the VAE's
    reconstruction term); for grey pixels its minimum is their entropy, not 0."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


class ReconstructionTask(SummedEvalTask):
    """Trains model=autoencoder or vae on the images of (x, y) batches; y is never read.

    recon = binary cross-entropy summed over pixels per example, averaged over the batch, so
    inputs must be pixels in [0, 1] (preprocess=none). For the VAE, kl = KL(q(z|x) || N(0, I))
    per example averaged over the batch, and loss = recon + beta * kl (the negative ELBO for
    beta = 1); for the autoencoder loss = recon. train/, val/ and test/ recon, kl (VAE) and loss
    are summed on the device and logged once per epoch (no per-step host sync). Augmentations
    change the target and the input alike; input noise (regularizer=input_noise) changes only
    the input, which makes a denoising autoencoder. The loss group does not apply: the task
    has its own loss.
    """

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        **common: Any,  # the rest of BaseTask's arguments (scheduler, regularizers, ...)
    ) -> None:
        super().__init__(net, loss_fn, optimizer, **common)
        name = type(net).__name__.lower()
        if type(loss_fn) is not nn.CrossEntropyLoss or loss_fn.label_smoothing:
            raise ConfigError(
                f"model={name} trains with its own reconstruction loss (binary cross-entropy over "
                "pixels), so the loss group and label smoothing do not apply; leave loss at its "
                "default (cross_entropy)."
            )
        self.variational = bool(getattr(net, "variational", False))
        self.beta = float(getattr(net, "beta", 0.0))
        # [sum of recon * B, sum of kl * B, examples, sum of penalty * B]
        self.register_buffer("train_sums", torch.zeros(4), persistent=False)
        self.register_buffer("eval_sums", torch.zeros(3), persistent=False)  # [recon, kl, count]
        self.eval_generator: torch.Generator | None = None

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        """No extra arguments; refuses inputs outside [0, 1] (binary cross-entropy needs pixels)."""
        splits = getattr(data, "splits", None)
        preprocess = cfg.preprocess._target_.rsplit(".", 1)[-1] if cfg.get("preprocess") else None
        if splits and "train" in splits:
            x = splits["train"][0]
            if getattr(x, "lazy", False):  # data.mmap=true: judged on a sample of the file
                x = x[torch.arange(min(len(x), 10_000))].read()
            low, high = x.min().item(), x.max().item()  # once, before training
            bad = low < 0.0 or high > 1.0
        else:  # only a spec: judge by the preprocessing alone
            low = high = None
            bad = preprocess not in (None, "Identity")
        if bad:
            name = chosen("model") or cfg.model._target_.rsplit(".", 1)[-1].lower()
            used = chosen("preprocess") or (preprocess or "none").lower()
            seen = f" gives inputs in [{low:.2f}, {high:.2f}]" if low is not None else ""
            raise ConfigError(
                f"model={name} scores reconstructions with binary cross-entropy, which needs "
                f"pixels in [0, 1], but preprocess={used}{seen}; use preprocess=none"
                + (" on image data scaled to [0, 1]." if used in ("none", "identity") else ".")
            )
        return {}

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        parts = ("recon", "kl", "loss") if self.variational else ("recon", "loss")
        metrics = tuple(f"{split}/{p}" for split in ("train", "val", "test") for p in parts)
        return metrics + ("lr",) + (("train/penalty",) if self.penalties else ())

    def losses(
        self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example reconstruction loss and KL (zeros for the autoencoder), each (N,)."""
        logits, kl = self.net.terms(x, generator)
        recon = reconstruction_loss(logits, target)
        return recon, (kl if kl is not None else torch.zeros_like(recon))

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    def train_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0]  # the labels are never used
        for transform in self.augment:
            x = transform(x)
        noisy = x
        for regularizer in self.input_transforms:
            noisy = regularizer.transform_input(noisy, self.trainer)
        recon, kl = self.losses(noisy, x)
        loss = recon.mean() + self.beta * kl.mean()
        penalty = self.penalty()
        with torch.no_grad():
            self.train_sums[0] += recon.detach().sum()
            self.train_sums[1] += kl.detach().sum()
            self.train_sums[2] += len(x)
            if self.penalties:
                self.train_sums[3] += penalty.detach() * len(x)
        if self.is_last_batch(batch_idx):
            self._log_sums("train", *self.train_sums[:3])
            if self.penalties:
                self.log_epoch("train/penalty", self.train_sums[3] / self.train_sums[2])
            self.log_lr()
        return loss + penalty

    def _eval_start(self) -> None:
        self.eval_sums.zero_()
        self.eval_generator = torch.Generator(device=self.device).manual_seed(EVAL_SEED)

    def _eval_step(self, batch) -> None:
        x = batch[0]
        recon, kl = self.losses(x, x, self.eval_generator)
        self.eval_sums[0] += recon.sum()
        self.eval_sums[1] += kl.sum()
        self.eval_sums[2] += len(x)

    def _log_eval(self, split: str) -> None:
        self._log_sums(split, *self.eval_sums)

    def _log_sums(self, split: str, recon: torch.Tensor, kl: torch.Tensor, count) -> None:
        self.log_epoch(f"{split}/recon", recon / count)
        if self.variational:
            self.log_epoch(f"{split}/kl", kl / count)
        self.log_epoch(f"{split}/loss", (recon + self.beta * kl) / count)
