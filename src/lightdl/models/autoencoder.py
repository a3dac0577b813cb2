"""Autoencoder and variational autoencoder (VAE) for images: encode to a small code, decode back.

An encoder maps an image to a latent code of `latent_dim` numbers and a decoder maps the code
back to an image; trained to reproduce their input (lightdl.tasks.reconstruction), the code must
keep what matters about the image. The decoder ends in logits; `generate`, `reconstruct` and
`forward` pass them through a sigmoid so pixels are in [0, 1] (the task's binary cross-entropy
reads the logits directly, which is numerically stable).

kind=mlp flattens the image; kind=conv has two stride-2 convolutions down (H and W must be
multiples of 4: 28x28, 32x32, 8x8) and two stride-2 transposed convolutions up. Both have dense
layers of widths `hidden` between the features and the code, mirrored in the decoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

Activation = Callable[[], nn.Module]
KINDS = ("mlp", "conv")


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per example, in closed form:
    0.5 * sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j). mu, logvar: (N, latent) -> (N,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def _dense(
    widths: Sequence[int], activation: Activation, dropout: float, batchnorm: bool
) -> list[nn.Module]:
    """Linear (-> batchnorm) -> activation (-> dropout) from each width to the next."""
    layers: list[nn.Module] = []
    for width, out in zip(widths, widths[1:], strict=False):
        layers.append(nn.Linear(width, out))
        if batchnorm:
            layers.append(nn.BatchNorm1d(out))
        layers.append(activation())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class Autoencoder(nn.Module):
    """Encoder (features -> dense `hidden` -> code of `latent_dim`), decoder its mirror image.

    `encode(x)` gives the code, `decode_logits(z)` the image's logits, `reconstruct(x)` and
    `generate(z)` images in [0, 1]. The code is unconstrained, so decoding random codes
    (`generate`) gives images only near codes the encoder produces; the VAE fixes that.
    """

    objective = "reconstruction"  # build.TASKS: trained by lightdl.tasks.reconstruction
    conditional = False
    variational = False

    def __init__(
        self,
        spec: DataSpec,
        hidden: Sequence[int] = (256,),
        latent_dim: int = 32,
        kind: str = "mlp",
        channels: Sequence[int] = (32, 64),
        activation: Activation | None = None,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__.lower()
        if spec.kind != "image":
            raise ConfigError(
                f"model={name} reconstructs images (C, H, W), but this data is of kind "
                f"'{spec.kind}'; use image data such as data=digits or data=fashion_mnist."
            )
        if kind not in KINDS:
            raise ConfigError(f"model.kind must be one of {', '.join(KINDS)}, got '{kind}'.")
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ConfigError(f"model.latent_dim must be a positive integer, got {latent_dim!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}.")
        activation = activation or nn.ReLU
        self.input_shape = tuple(spec.input_shape)
        self.latent_dim = latent_dim
        self.kind = kind
        if kind == "conv":
            features, feature_shape = self._conv_encoder(channels, activation, batchnorm)
        else:
            features, feature_shape = [nn.Flatten()], (spec.input_dim,)
        flat = math.prod(feature_shape)
        widths = [flat, *hidden]
        self.encoder = nn.Sequential(*features, *_dense(widths, activation, dropout, batchnorm))
        # the VAE's head gives mu and log-variance side by side
        self.to_code = nn.Linear(widths[-1], latent_dim * (2 if self.variational else 1))
        back = [latent_dim, *reversed(hidden)]
        layers = _dense(back, activation, dropout, batchnorm)
        layers.append(nn.Linear(back[-1], flat))
        if kind == "conv":
            layers += [*self._conv_decoder(channels, feature_shape, activation, batchnorm)]
        else:
            layers.append(nn.Unflatten(1, self.input_shape))
        self.decoder = nn.Sequential(*layers)

    def _conv_encoder(
        self, channels: Sequence[int], activation: Activation, batchnorm: bool
    ) -> tuple[list[nn.Module], tuple[int, ...]]:
        c, h, w = self.input_shape
        if len(channels) != 2 or not all(isinstance(k, int) and k >= 1 for k in channels):
            raise ConfigError(
                f"model.channels must be two positive integers (one per conv), got {channels!r}."
            )
        if h % 4 or w % 4:
            raise ConfigError(
                f"model.kind=conv halves the image twice, so H and W must be multiples of 4, "
                f"got {h}x{w}; use model.kind=mlp."
            )
        layers: list[nn.Module] = []
        for c_in, c_out in zip((c, channels[0]), channels, strict=True):
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))  # halves H and W
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(activation())
        layers.append(nn.Flatten())
        return layers, (channels[1], h // 4, w // 4)

    def _conv_decoder(
        self,
        channels: Sequence[int],
        feature_shape: tuple[int, ...],
        activation: Activation,
        batchnorm: bool,
    ) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Unflatten(1, feature_shape), activation()]
        layers.append(nn.ConvTranspose2d(channels[1], channels[0], 4, stride=2, padding=1))
        if batchnorm:
            layers.append(nn.BatchNorm2d(channels[0]))
        layers.append(activation())
        layers.append(nn.ConvTranspose2d(channels[0], self.input_shape[0], 4, stride=2, padding=1))
        return layers

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code (N, latent_dim) of images x."""
        return self.to_code(self.encoder(x))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits (N, C, H, W) decoded from codes z (N, latent_dim)."""
        return self.decoder(z)

    def terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(reconstruction logits, per-example KL or None): what the task's loss needs."""
        return self.decode_logits(self.encode(x)), None

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] decoded from codes z (N, latent_dim); labels unused."""
        return torch.sigmoid(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x encoded and decoded, in [0, 1]."""
        return torch.sigmoid(self.decode_logits(self.encode(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x)


class VAE(Autoencoder):
    """Variational autoencoder (Kingma & Welling 2014): the encoder gives a Gaussian q(z|x) =
    N(mu, diag(exp(logvar))), a code is sampled as z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)
    (the reparameterisation keeps the sample differentiable in mu and logvar), and the decoder
    gives p(x|z). Training minimises reconstruction + beta * KL(q(z|x) || N(0, I)), the negative
    ELBO for beta = 1; the KL pulls codes towards N(0, I), so decoding z ~ N(0, I) (`generate`)
    gives plausible images. beta > 1 trades reconstruction for a smoother latent space.
    `reconstruct` decodes the mean code (no sampling).
    """

    variational = True

    def __init__(
        self,
        spec: DataSpec,
        hidden: Sequence[int] = (256,),
        latent_dim: int = 32,
        kind: str = "mlp",
        channels: Sequence[int] = (32, 64),
        beta: float = 1.0,
        activation: Activation | None = None,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        if isinstance(beta, bool) or not isinstance(beta, int | float) or beta < 0:
            raise ConfigError(f"model.beta must be a number >= 0, got {beta!r}.")
        super().__init__(spec, hidden, latent_dim, kind, channels, activation, dropout, batchnorm)
        self.beta = float(beta)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (N, latent_dim): the diagonal Gaussian q(z|x)."""
        mu, logvar = self.to_code(self.encoder(x)).chunk(2, dim=-1)
        return mu, logvar

    def sample(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) (from `generator` when given)."""
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + torch.exp(0.5 * logvar) * eps

    def terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode_logits(self.sample(mu, logvar, generator)), kl(mu, logvar)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode_logits(mu))
