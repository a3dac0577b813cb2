"""SemiSupervisedGANTask: a GAN whose discriminator is also the classifier (model=sgan).

D sees every training image (labelled or not) in the adversarial game, and a few labelled ones
in a supervised term, so what it learns about real images from the unlabelled ones helps it
classify (Salimans et al. 2016, "Improved techniques for training GANs").
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lightdl.data.base import NO_LABEL
from lightdl.errors import ConfigError
from lightdl.tasks.adversarial import OPTIONS, AdversarialTask

SEMI_OPTIONS = {"feature_matching": True, "labelled_batch": 64, "adversarial": True}


class SemiSupervisedGANTask(AdversarialTask):
    """AdversarialTask with a K-class discriminator (the fake class's logit fixed at 0).

    - D's real/fake logit is logsumexp of its K class logits, so P(real) = Z / (Z + 1) with
      Z = sum exp(logits); the unsupervised loss is the GAN's (label smoothing, label noise and
      instance noise apply as for model=gan).
    - Each D step adds the cross-entropy of `labelled_batch` examples drawn at random (on the
      device) from the labelled training examples: those whose label is not NO_LABEL (-1, from
      data.train_per_class with data.unlabelled=keep; every example when all are labelled).
      The labels of the image batches themselves are never read.
    - G minimises feature matching, the mean squared difference between the means of D's last
      hidden features on the real batch and on its fakes (`feature_matching`, the paper's choice: G
      aims at the statistics of real data rather than at fooling the current D), or the
      non-saturating loss when off.
    With `adversarial` off, D is trained as a plain classifier on the same labelled draws, d_steps
    steps per batch (no G, no unlabelled images): the same network and number of supervised
    steps, the baseline that shows what the unlabelled images added.
    Logged besides the GAN metrics: train/sup_loss and train/acc on the labelled draws, and per
    evaluation pass split/acc; split/loss (train included) is the class cross-entropy, so
    checkpoints, early stopping and sweep tables treat it like any classifier.
    """

    base_metrics = AdversarialTask.base_metrics + (
        "train/sup_loss", "train/acc", "val/acc", "test/acc",
    )  # fmt: skip

    def __init__(
        self,
        *args: Any,
        feature_matching: bool = True,
        labelled_batch: int = 64,
        adversarial: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.feature_matching, self.labelled_batch = feature_matching, labelled_batch
        self.adversarial = adversarial
        self.register_buffer("sup_sums", torch.zeros(3), persistent=False)  # [ce*m, correct, m]
        self.register_buffer("class_sums", torch.zeros(3), persistent=False)  # [ce*n, correct, n]
        self.labelled: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None  # (x, net(x)) in _eval_step

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        keys = {**OPTIONS, **SEMI_OPTIONS}
        return {key: cfg.model.get(key, default) for key, default in keys.items()}

    def on_fit_start(self) -> None:
        """Keep the labelled training examples (already on the device) for the supervised term."""
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "resident"):
            raise ConfigError(
                "model=sgan needs a lightdl DataModule to find its labelled examples."
            )
        x, y = datamodule.resident("train")
        keep = y != NO_LABEL
        x = x[keep]
        self.labelled = (x.read() if getattr(x, "lazy", False) else x, y[keep])  # data.mmap=true
        if not len(self.labelled[1]):
            raise ConfigError("model=sgan found no labelled training examples (all labels are -1).")

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.sup_sums.zero_()

    def d_logit(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """log Z = logsumexp of the K class logits: the logit of P(real) against the fake class."""
        cached = self._cached
        logits = cached[1] if cached is not None and cached[0] is x else self.net(x)
        return torch.logsumexp(logits, dim=-1)

    def d_extra_loss(self) -> torch.Tensor:
        """Cross-entropy on a random draw of labelled examples (with replacement, on the device)."""
        x, y = self.labelled
        pick = torch.randint(len(y), (self.labelled_batch,), device=y.device)
        x, y = self.transformed(x[pick]), y[pick]
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        with torch.no_grad():
            self.sup_sums[0] += loss.detach() * len(y)
            self.sup_sums[1] += (logits.argmax(-1) == y).sum()
            self.sup_sums[2] += len(y)
        return loss

    def g_objective(self, real: torch.Tensor, fake: torch.Tensor, labels, std: float):
        if not self.feature_matching:
            return super().g_objective(real, fake, labels, std)
        with torch.no_grad():
            target = self.net.features(self._noisy(real, std)).mean(0)
        return (self.net.features(self._noisy(fake, std)).mean(0) - target).pow(2).mean()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.adversarial:
            return super().training_step(batch, batch_idx)
        opt_d, _ = self.optimizers()  # the baseline: D alone on the labelled draws
        for _ in range(self.d_steps):  # as many supervised steps as the SGAN takes
            loss = self.d_extra_loss()
            opt_d.zero_grad()
            self.manual_backward(loss)
            opt_d.step()
        if self.is_last_batch(batch_idx):
            self._log_train()
        return loss.detach()

    def _log_train(self, loss=None) -> None:
        sums = self.sup_sums
        if self.adversarial:
            super()._log_train(sums[0] / sums[2])  # train/loss: the labelled cross-entropy
        else:
            self.log_epoch("train/loss", sums[0] / sums[2])
            self.log_lr()
        self.log_epoch("train/sup_loss", sums[0] / sums[2])
        self.log_epoch("train/acc", sums[1] / sums[2])

    def _eval_start(self) -> None:
        super()._eval_start()
        self.class_sums.zero_()

    def _eval_step(self, batch) -> None:
        x, y = batch
        logits = self.net(x)  # once: the class logits and, through logsumexp, the real logit
        self._cached = (x, logits)
        super()._eval_step(batch)
        self._cached = None
        self.class_sums[0] += F.cross_entropy(logits, y, reduction="sum")
        self.class_sums[1] += (logits.argmax(-1) == y).sum()
        self.class_sums[2] += len(y)

    def _log_eval(self, split: str) -> None:
        sums, classes = self.eval_sums, self.class_sums
        loss = classes[0] / classes[2]
        self._log_sums(split, sums[0] / sums[4], sums[1] / sums[4], sums[2:4] / sums[4], loss)
        self.log_epoch(f"{split}/acc", classes[1] / classes[2])
