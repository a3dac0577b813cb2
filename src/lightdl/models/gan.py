"""Generative adversarial networks: a generator G (noise -> image) and a discriminator D
(image -> one "real" logit), trained against each other by lightdl.tasks.adversarial.

Both classes declare `objective = "adversarial"`, so build.build_task trains them with
AdversarialTask whatever the data's task is; they read image data and never its labels.
The training options (d_steps, g_steps, g_lr, d_lr, label_smoothing, label_noise,
instance_noise, noise_decay_epochs, gan_loss, gp_weight) are parameters here only so that a model
yaml may set them; the task reads and checks them (AdversarialTask.options reads the config).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

Activation = Callable[[], nn.Module]


def _unit(activation: Activation | None, default: Activation, name: str) -> Activation:
    """The hidden activation factory; one that widens its layer (maxout) is refused."""
    factory = activation if activation is not None else default
    if getattr(factory(), "widen", 1) != 1:
        raise ConfigError(
            f"model={name} uses one output per hidden unit; choose another activation."
        )
    return factory


class AdversarialModel(nn.Module):
    """What GAN and DCGAN share: the training options, `generate`, and forward = D's logits."""

    objective = "adversarial"
    conditional = False

    def _store(self, spec: DataSpec, latent_dim: int, name: str) -> None:
        if spec.kind != "image":
            raise ConfigError(
                f"model={name} generates images, but this data is {spec.kind}; use image data "
                "(data=digits, mnist, fashion_mnist, cifar10)."
            )
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be >= 1, got {latent_dim}.")
        self.spec, self.latent_dim = spec, latent_dim

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from latent vectors z (N, latent_dim); labels unused."""
        return self.generator(z).view(len(z), *self.spec.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """D's logit (N,) that each image is real."""
        return self.discriminator(x).squeeze(-1)


class GAN(AdversarialModel):
    """MLP generator and discriminator (Goodfellow et al. 2014).

    G: latent -> Linear -> activation per width in g_hidden -> Linear -> sigmoid, reshaped to the
    data's image shape. `activation` (the activation group, ReLU by default) is G's.
    D: flattened image -> Linear -> LeakyReLU(d_slope) -> Dropout(d_dropout) per width in
    d_hidden -> Linear -> one logit. The leaky slope keeps gradients flowing back to G where D
    is sure; dropout weakens D so it does not win too early and starve G of gradient.
    regularizer=dropout (the `dropout` argument) replaces d_dropout when given.
    """

    def __init__(
        self,
        spec: DataSpec,
        latent_dim: int = 64,
        hidden: Sequence[int] = (256, 256),
        g_hidden: Sequence[int] | None = None,
        d_hidden: Sequence[int] | None = None,
        d_dropout: float = 0.3,
        d_slope: float = 0.2,
        activation: Activation | None = None,
        dropout: float = 0.0,
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
    ) -> None:
        super().__init__()
        self._store(spec, latent_dim, "gan")  # the training options are the task's
        unit = _unit(activation, nn.ReLU, "gan")
        p = dropout if dropout > 0 else d_dropout
        layers: list[nn.Module] = []
        width = latent_dim
        for out in g_hidden if g_hidden is not None else hidden:
            layers += [nn.Linear(width, out), unit()]
            width = out
        self.generator = nn.Sequential(*layers, nn.Linear(width, spec.input_dim), nn.Sigmoid())
        layers, width = [nn.Flatten()], spec.input_dim
        for out in d_hidden if d_hidden is not None else hidden:
            layers += [nn.Linear(width, out), nn.LeakyReLU(d_slope)]
            if p > 0:
                layers.append(nn.Dropout(p))
            width = out
        self.discriminator = nn.Sequential(*layers, nn.Linear(width, 1))


class DCGAN(AdversarialModel):
    """Deep convolutional GAN (Radford et al. 2016) for square images whose side divides by 4
    (8x8 digits, 28x28 MNIST/Fashion-MNIST, 32x32 CIFAR-10).

    G: latent -> Linear -> BatchNorm -> activation, as 2*channels maps of side/4, then two
    stride-2 transposed convolutions (the first with BatchNorm and the activation) up to the
    image, sigmoid at the end. D: two stride-2 convolutions (channels, 2*channels; BatchNorm on
    the second, or per-example layer normalization for gan_loss=wasserstein, whose gradient
    penalty batchnorm would break) with LeakyReLU(d_slope) and dropout, then one logit. No
    pooling anywhere: the strides learn their own up- and down-sampling, and batchnorm keeps G's layers well scaled.
    """

    def __init__(
        self,
        spec: DataSpec,
        latent_dim: int = 100,
        channels: int = 64,
        d_dropout: float = 0.3,
        d_slope: float = 0.2,
        activation: Activation | None = None,
        dropout: float = 0.0,
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
        _name: str = "dcgan",  # the option named in errors: cgan and sgan build on DCGAN
    ) -> None:
        super().__init__()
        self._store(spec, latent_dim, _name)  # the training options are the task's
        c, h, w = spec.input_shape
        if h != w or h % 4:
            raise ConfigError(
                f"model={_name} needs square images whose side divides by 4, got {h}x{w}."
            )
        unit = _unit(activation, nn.ReLU, _name)
        p = dropout if dropout > 0 else d_dropout
        side, wide = h // 4, 2 * channels
        self.generator = nn.Sequential(
            nn.Linear(latent_dim, wide * side * side, bias=False),
            nn.BatchNorm1d(wide * side * side),
            unit(),
            nn.Unflatten(1, (wide, side, side)),
            nn.ConvTranspose2d(wide, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            unit(),
            nn.ConvTranspose2d(channels, c, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )
        self.discriminator = nn.Sequential(
            nn.Conv2d(c, channels, 4, stride=2, padding=1),
            nn.LeakyReLU(d_slope),
            nn.Dropout(p),
            nn.Conv2d(channels, wide, 4, stride=2, padding=1, bias=False),
            # a gradient penalty is per example, so a WGAN-GP critic normalizes per example
            nn.GroupNorm(1, wide) if gan_loss == "wasserstein" else nn.BatchNorm2d(wide),
            nn.LeakyReLU(d_slope),
            nn.Dropout(p),
            nn.Flatten(),
            nn.Linear(wide * side * side, 1),
        )


class ConditionalGenerator(nn.Module):
    """G(z, y): the one-hot class is appended to the latent vector before G's first layer."""

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.body, self.num_classes = body, num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(labels, self.num_classes).to(z.dtype)
        return self.body(torch.cat([z, onehot], dim=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = w . h(x) + b + embed(y) . h(x) (Miyato & Koyama 2018): the class enters as an
    inner product with D's last features h(x), so D judges whether x is a real image *of class y*."""

    def __init__(self, trunk: nn.Module, head: nn.Linear, num_classes: int) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head
        self.embed = nn.Embedding(num_classes, head.in_features)
        nn.init.zeros_(self.embed.weight)  # starts as the unconditional D

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Without labels (a model summary), only the class-free part w . h(x) + b."""
        h = self.trunk(x)
        if labels is None:
            return self.head(h)
        return self.head(h) + (self.embed(labels) * h).sum(-1, keepdim=True)


class CGAN(AdversarialModel):
    """Conditional GAN (Mirza & Osindero 2014): G draws an image of a requested class, D judges
    (image, class) pairs, both given the training labels. The networks are model=dcgan's (the
    keyword arguments are its: channels, d_dropout, the training options, ...).
    G gets the one-hot class appended to z; D is a projection discriminator. Fake images are
    drawn for classes sampled uniformly, so samples of every class are asked for equally.
    """

    conditional = True

    def __init__(self, spec: DataSpec, latent_dim: int = 100, **kwargs):
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be >= 1, got {latent_dim}.")
        base = DCGAN(spec, latent_dim=latent_dim + spec.num_classes, _name="cgan", **kwargs)
        if spec.num_classes < 2:
            raise ConfigError("model=cgan draws images of a class, so the data needs >= 2 classes.")
        k = spec.num_classes
        self.spec, self.latent_dim, self.num_classes = spec, latent_dim, k
        self.generator = ConditionalGenerator(base.generator, k)
        *trunk, head = base.discriminator
        self.discriminator = ProjectionDiscriminator(nn.Sequential(*trunk), head, k)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] of the classes `labels` (N,) from latents z."""
        if labels is None:
            raise ValueError("model=cgan generates images of given classes: pass labels.")
        return self.generator(z, labels).view(len(z), *self.spec.input_shape)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's logit (N,) that each image is a real image of its class."""
        return self.discriminator(x, labels).squeeze(-1)


class SGAN(AdversarialModel):
    """Semi-supervised GAN (Salimans et al. 2016): D is a K+1-way classifier - the data's K classes
    and "fake" - so it learns to classify from few labels while learning what real images look
    like from all of them. The fake class's logit is fixed at 0 (the K+1-way softmax has one
    redundant logit), so D's K outputs l give P(real | x) = sigmoid(logsumexp(l)).
    forward(x) returns the K class logits (the classifier); `features(x)` is D's last hidden
    layer, which G matches in mean when feature_matching is on (the paper's G objective).
    The networks are model=dcgan's; the other keyword arguments are its.
    `labelled_batch` labelled examples are drawn per training step from the labelled ones;
    adversarial=false trains D alone on them, as a plain classifier (the baseline).
    """

    objective = "semi_supervised"
    tasks = ("classification",)

    def __init__(
        self,
        spec: DataSpec,
        latent_dim: int = 100,
        feature_matching: bool = True,
        labelled_batch: int = 64,
        adversarial: bool = True,
        **kwargs,
    ):
        super().__init__()
        base = DCGAN(spec, latent_dim=latent_dim, _name="sgan", **kwargs)
        if spec.num_classes < 2:
            raise ConfigError("model=sgan classifies, so the data needs >= 2 classes.")
        for key, value in (("feature_matching", feature_matching), ("adversarial", adversarial)):
            if not isinstance(value, bool):
                raise ConfigError(f"model.{key} must be true or false, got {value!r}.")
        if (
            isinstance(labelled_batch, bool)
            or not isinstance(labelled_batch, int)
            or labelled_batch < 1
        ):
            raise ConfigError(
                f"model.labelled_batch must be an integer >= 1, got {labelled_batch!r}."
            )
        self.spec, self.latent_dim = spec, latent_dim
        self.generator = base.generator
        *trunk, head = base.discriminator
        self.discriminator = nn.Sequential(
            nn.Sequential(*trunk), nn.Linear(head.in_features, spec.num_classes)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """D's last hidden features (N, F), before its class layer."""
        return self.discriminator[0](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The K class logits (N, K); the fake class's logit is 0."""
        return self.discriminator(x)
