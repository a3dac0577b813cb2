"""AdversarialTask: a generator and a discriminator trained against each other (model=gan, dcgan).

The stabilization tricks are small pure functions (`real_target`, `flip_labels`,
`instance_noise_std`) so their formulas can be checked on their own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.errors import ConfigError
from lightdl.regularizers import Regularizer
from lightdl.tasks.base import SummedEvalTask

EVAL_SEED = 1234  # val and test fakes come from the same latent draws every pass
OPTIONS = {  # model.<key> -> default: the task's settings, written in the model yaml
    "d_steps": 1,
    "g_steps": 1,
    "g_lr": None,
    "d_lr": None,
    "label_smoothing": 0.0,
    "label_noise": 0.0,
    "instance_noise": 0.0,
    "noise_decay_epochs": 0,
    "gan_loss": "bce",
    "gp_weight": 10.0,
}
GAN_LOSSES = ("bce", "wasserstein")


def real_target(label_smoothing: float) -> float:
    """One-sided label smoothing: D's target for real images is 1 - eps; fakes stay at 0."""
    return 1.0 - label_smoothing


def flip_labels(
    targets: torch.Tensor, fraction: float, real: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Label noise: each target is swapped (real <-> 0) with probability `fraction`."""
    if fraction <= 0:
        return targets
    flip = torch.rand(targets.shape, device=targets.device, generator=generator) < fraction
    return torch.where(flip, real - targets, targets)


def d_targets(
    n_real: int,
    n_fake: int,
    label_smoothing: float = 0.0,
    label_noise: float = 0.0,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """D's targets for n_real real then n_fake fake images: real_target(label_smoothing) and 0,
    with a `label_noise` fraction of them swapped."""
    real = real_target(label_smoothing)
    targets = torch.cat(
        [torch.full((n_real,), real, device=device), torch.zeros(n_fake, device=device)]
    )
    return flip_labels(targets, label_noise, real, generator)


def instance_noise_std(epoch: int, std: float, decay_epochs: int) -> float:
    """Std of the Gaussian noise on D's inputs (real and fake): std at epoch 0, falling linearly
    to 0 at `decay_epochs` and staying there; decay_epochs=0 keeps it constant."""
    if decay_epochs <= 0:
        return std
    return std * max(0.0, 1.0 - epoch / decay_epochs)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): the batch mean of (||grad critic(x_hat)||_2 - 1)^2 at
    x_hat = e * real + (1 - e) * fake, e ~ U(0, 1) per example. It keeps the critic close to
    1-Lipschitz, which the Wasserstein distance estimate needs; create_graph lets D train on it."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class AdversarialTask(SummedEvalTask):
    """Trains a model with `generator`, `discriminator` and `generate(z)` by manual optimization.

    Per training batch of real images x (labels are read only by conditional nets, model=cgan,
    whose D judges (image, class) pairs and whose G is asked for uniformly drawn classes;
    otherwise never, not even in validation and test): `d_steps` updates of D on
    BCE(D(x), real_target) + BCE(D(G(z)), 0) (the mean over real and fake; label noise flips a
    fraction of those targets), then `g_steps` updates of G on the non-saturating loss
    BCE(D(G(z)), 1), i.e. -log D(G(z)), which keeps a strong gradient when D rejects the fakes.
    Instance noise N(0, std^2) is added to everything D sees, std decaying linearly per epoch.
    gan_loss=wasserstein (WGAN-GP) makes D a critic instead: D's loss is mean D(fake) - mean
    D(real) + gp_weight x gradient_penalty, G's is -mean D(fake) (label smoothing and label noise
    do not apply; d_real_acc / d_fake_acc count positive / negative critic scores).
    Two optimizers come from the `optimizer` factory (D's first, G's second); model.d_lr and
    model.g_lr replace its lr for one network.
    Logged once per epoch: train/d_loss (the real/fake loss alone, without the gradient penalty
    or sgan's supervised term, so it compares with val/d_loss), train/g_loss, train/d_real_acc, train/d_fake_acc
    (fraction of real images D calls real, of fakes D calls fake) and train/loss = train/g_loss;
    per evaluation pass the same on the split's images and fixed latent draws, with
    val/loss = val/g_loss (so the default monitor works: lower means G fools D more).
    The loss group, label smoothing through the loss, lr schedules, weight penalties, weight
    decay, input-noise regularizers and gradient clipping do not apply and are refused.
    """

    base_metrics = (
        "train/loss", "train/d_loss", "train/g_loss", "train/d_real_acc", "train/d_fake_acc",
        "val/loss", "val/d_loss", "val/g_loss", "val/d_real_acc", "val/d_fake_acc",
        "test/loss", "test/d_loss", "test/g_loss", "test/d_real_acc", "test/d_fake_acc", "lr",
    )  # fmt: skip
    loss_diagnoses_fit = (
        False  # G's loss against a moving D says nothing about over- or underfitting
    )

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        *,
        d_steps: int = 1,
        g_steps: int = 1,
        g_lr: float | None = None,
        d_lr: float | None = None,
        label_smoothing: float = 0.0,
        label_noise: float = 0.0,
        instance_noise: float = 0.0,
        noise_decay_epochs: int = 0,
        gan_loss: str = "bce",
        gp_weight: float = 10.0,
        **common: Any,  # the rest of BaseTask's arguments (scheduler, regularizers, ...)
    ) -> None:
        super().__init__(net, loss_fn, optimizer, **common)
        self._refuse(loss_fn, common.get("scheduler"), common.get("regularizers", ()))
        self._check(
            d_steps, g_steps, label_smoothing, label_noise, instance_noise, noise_decay_epochs
        )
        self._check_wasserstein(net, gan_loss, gp_weight, label_smoothing, label_noise)
        self.gan_loss, self.gp_weight = gan_loss, gp_weight
        self.automatic_optimization = False
        self.d_steps, self.g_steps = d_steps, g_steps
        self.g_lr, self.d_lr = g_lr, d_lr
        self.label_smoothing, self.label_noise = label_smoothing, label_noise
        self.instance_noise, self.noise_decay_epochs = instance_noise, noise_decay_epochs
        # [d_loss * n, real correct, fake correct, n (per D step), g_loss * n, n (per G step)]
        self.register_buffer("train_sums", torch.zeros(6), persistent=False)
        # [d_loss * n, g_loss * n, real correct, fake correct, n]
        self.register_buffer("eval_sums", torch.zeros(5), persistent=False)
        self.eval_generator: torch.Generator | None = None

    @staticmethod
    def _refuse(loss_fn, scheduler, regularizers) -> None:
        if type(loss_fn) is not nn.CrossEntropyLoss or loss_fn.label_smoothing:
            raise ConfigError(
                "GANs train with their own binary real/fake losses, so the loss group and "
                "regularizer=label_smoothing do not apply; use model.label_smoothing instead."
            )
        if scheduler is not None:
            raise ConfigError(
                "scheduler does not apply to model=gan or dcgan (two optimizers stepped by hand); "
                "leave scheduler=none."
            )
        for regularizer in regularizers:
            name = type(regularizer).__name__
            if "gradient_clip_val" in regularizer.trainer_kwargs():
                raise ConfigError(
                    f"{name} uses Lightning's gradient clipping, which manual optimization "
                    "(GANs) does not support; remove it."
                )
            if type(regularizer).penalty is not Regularizer.penalty or (
                type(regularizer).before_optimizer_step is not Regularizer.before_optimizer_step
            ):
                raise ConfigError(
                    f"{name} acts on the weights of one network, but a GAN has two optimizers; "
                    "weaken D with model.d_dropout or regularizer=dropout instead."
                )
            if type(regularizer).transform_input is not Regularizer.transform_input:
                raise ConfigError(
                    f"{name} adds noise to inputs; for GANs use model.instance_noise, which "
                    "noises what the discriminator sees, real and fake."
                )

    @staticmethod
    def _check(d_steps, g_steps, label_smoothing, label_noise, instance_noise, decay) -> None:
        rules = [
            ("d_steps", d_steps, isinstance(d_steps, int) and d_steps >= 1, "an integer >= 1"),
            ("g_steps", g_steps, isinstance(g_steps, int) and g_steps >= 1, "an integer >= 1"),
            ("label_smoothing", label_smoothing, 0 <= label_smoothing < 1, "in [0, 1)"),
            ("label_noise", label_noise, 0 <= label_noise <= 0.5, "in [0, 0.5]"),
            ("instance_noise", instance_noise, instance_noise >= 0, ">= 0"),
            ("noise_decay_epochs", decay, isinstance(decay, int) and decay >= 0, "an integer >= 0"),
        ]
        for key, value, ok, rule in rules:
            if not ok:
                raise ConfigError(f"model.{key} must be {rule}, got {value!r}.")

    @staticmethod
    def _check_wasserstein(net, gan_loss, gp_weight, label_smoothing, label_noise) -> None:
        if gan_loss not in GAN_LOSSES:
            raise ConfigError(
                f"model.gan_loss must be one of {list(GAN_LOSSES)}, got {gan_loss!r}."
            )
        if isinstance(gp_weight, bool) or not isinstance(gp_weight, int | float) or gp_weight < 0:
            raise ConfigError(f"model.gp_weight must be a number >= 0, got {gp_weight!r}.")
        if gan_loss != "wasserstein":
            return
        if net.conditional or getattr(net, "objective", "") != "adversarial":
            raise ConfigError(
                "model.gan_loss=wasserstein is for model=gan and dcgan (an unconditional critic)."
            )
        if label_smoothing or label_noise:
            raise ConfigError(
                "model.label_smoothing and model.label_noise shape binary real/fake targets, which "
                "a Wasserstein critic does not have; set them to 0."
            )

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        """The GAN settings written under `model` (d_steps, g_steps, label_smoothing, ...)."""
        return {key: cfg.model.get(key, default) for key, default in OPTIONS.items()}

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        return self.base_metrics

    def configure_optimizers(self):
        """[D's optimizer, G's optimizer], each over its own network's parameters only."""
        make = self.optimizer_factory

        def factory(lr):
            return functools.partial(make, lr=lr) if lr is not None else make

        opt_d = factory(self.d_lr)(self.net.discriminator.parameters())
        opt_g = factory(self.g_lr)(self.net.generator.parameters())
        return [opt_d, opt_g]

    def noise_std(self) -> float:
        return instance_noise_std(self.current_epoch, self.instance_noise, self.noise_decay_epochs)

    def _noisy(self, x: torch.Tensor, std: float) -> torch.Tensor:
        return x + std * torch.randn_like(x) if std > 0 else x

    def _latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.net.latent_dim, device=self.device, generator=generator)

    def d_loss(self, real_logits, fake_logits, label_noise: float | None = None) -> torch.Tensor:
        """Mean BCE over real (target real_target, maybe flipped) and fake (0) logits; for
        gan_loss=wasserstein, mean critic score of fakes minus that of reals."""
        if self.gan_loss == "wasserstein":
            return fake_logits.mean() - real_logits.mean()
        noise = self.label_noise if label_noise is None else label_noise
        targets = d_targets(
            len(real_logits), len(fake_logits), self.label_smoothing, noise, real_logits.device
        )
        return F.binary_cross_entropy_with_logits(torch.cat([real_logits, fake_logits]), targets)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Non-saturating generator loss: BCE(D(G(z)), 1) = mean of -log sigmoid(D(G(z)));
        for gan_loss=wasserstein, minus the mean critic score of the fakes."""
        if self.gan_loss == "wasserstein":
            return -fake_logits.mean()
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def d_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | int:
        """gp_weight x the gradient penalty for a Wasserstein critic; nothing for BCE."""
        if self.gan_loss != "wasserstein" or not self.gp_weight:
            return 0
        return self.gp_weight * gradient_penalty(lambda v: self.d_logit(v, None), real, fake)

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    # ---- the pieces a conditional or semi-supervised GAN changes --------------------------------

    def _real_labels(self, batch) -> torch.Tensor | None:
        """The batch's labels for a conditional net (D judges image-class pairs); otherwise the
        labels are never read."""
        return batch[1] if self.net.conditional else None

    def _fake_labels(self, n: int, generator: torch.Generator | None = None):
        """Classes asked of G, uniform over the data's classes (conditional nets only)."""
        if not self.net.conditional:
            return None
        k = self.net.num_classes
        return torch.randint(k, (n,), device=self.device, generator=generator)

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.net.generate(z) if labels is None else self.net.generate(z, labels)

    def d_logit(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's logit (N,) that each image is real (of its class, for conditional nets)."""
        return self.net(x) if labels is None else self.net(x, labels)

    def d_extra_loss(self) -> torch.Tensor | int:
        """Added to D's loss at each D step (the semi-supervised GAN's labelled term)."""
        return 0

    def g_objective(self, real: torch.Tensor, fake: torch.Tensor, labels, std: float):
        """G's loss on its fakes: the non-saturating loss through D (instance noise included)."""
        return self.g_loss(self.d_logit(self._noisy(fake, std), labels))

    # ---- training ------------------------------------------------------------------------------

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0]
        labels = self._real_labels(batch)
        for transform in self.augment:
            x = transform(x)
        opt_d, opt_g = self.optimizers()
        n, std, sums = len(x), self.noise_std(), self.train_sums
        for _ in range(self.d_steps):
            fake_labels = self._fake_labels(n)
            with torch.no_grad():
                fake = self._generate(self._latent(n), fake_labels)
            real, fake = self._noisy(x, std), self._noisy(fake, std)
            real_logits = self.d_logit(real, labels)
            fake_logits = self.d_logit(fake, fake_labels)
            game = self.d_loss(real_logits, fake_logits)  # logged: comparable with val/d_loss
            loss = d_loss = game + self.d_penalty(real, fake) + self.d_extra_loss()
            opt_d.zero_grad()
            self.manual_backward(loss)
            opt_d.step()
            with torch.no_grad():
                sums[0] += game.detach() * n
                sums[1] += (real_logits > 0).sum()
                sums[2] += (fake_logits < 0).sum()
                sums[3] += n
        for _ in range(self.g_steps):
            fake_labels = self._fake_labels(n)
            fake = self._generate(self._latent(n), fake_labels)
            loss = self.g_objective(x, fake, fake_labels, std)
            opt_g.zero_grad()
            self.manual_backward(loss)
            opt_g.step()
            with torch.no_grad():
                sums[4] += loss.detach() * n
                sums[5] += n
        if self.is_last_batch(batch_idx):
            self._log_train()
        return (d_loss + loss).detach()  # for callbacks (nan_guard): non-finite if either is

    def _log_train(self, loss=None) -> None:
        """The epoch's training metrics from train_sums, once, at its last batch."""
        sums = self.train_sums
        self._log_sums("train", sums[0] / sums[3], sums[4] / sums[5], sums[1:3] / sums[3], loss)

    def _log_sums(self, split, d_loss, g_loss, accuracies, loss=None) -> None:
        """`split`/loss is G's loss unless a subclass passes its own `loss`."""
        self.log_epoch(f"{split}/d_loss", d_loss)
        self.log_epoch(f"{split}/g_loss", g_loss)
        self.log_epoch(f"{split}/loss", g_loss if loss is None else loss)
        self.log_epoch(f"{split}/d_real_acc", accuracies[0])
        self.log_epoch(f"{split}/d_fake_acc", accuracies[1])
        if split == "train":
            self.log_lr()

    def _eval_start(self) -> None:
        self.eval_sums.zero_()
        self.eval_generator = torch.Generator(device=self.device).manual_seed(EVAL_SEED)

    def _eval_step(self, batch) -> None:
        x = batch[0]
        labels = self._real_labels(batch)  # None unless conditional: labels are never read
        n = len(x)
        fake_labels = self._fake_labels(n, self.eval_generator)
        fake = self._generate(self._latent(n, self.eval_generator), fake_labels)
        fake_logits = self.d_logit(fake, fake_labels)
        real_logits = self.d_logit(x, labels)
        sums = self.eval_sums
        sums[0] += self.d_loss(real_logits, fake_logits, label_noise=0.0) * n  # no penalty here
        sums[1] += self.g_loss(fake_logits) * n
        sums[2] += (real_logits > 0).sum()
        sums[3] += (fake_logits < 0).sum()
        sums[4] += n

    def _log_eval(self, split: str) -> None:
        sums = self.eval_sums
        self._log_sums(split, sums[0] / sums[4], sums[1] / sums[4], sums[2:4] / sums[4])
