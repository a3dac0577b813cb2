"""Preprocessing fitted on the training split only, then applied to every split."""

from __future__ import annotations

import torch


class Identity:
    """No preprocessing: inputs stay as the loader scaled them."""

    def fit(self, x: torch.Tensor) -> None:
        pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Standardize:
    """Zero mean and unit variance per feature, with statistics from the training split only."""

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> None:
        self.mean = x.mean(dim=0, keepdim=True)
        std = x.std(dim=0, keepdim=True)
        # a feature constant in training (e.g. an always-black border pixel) is only centred
        self.std = torch.where(std < self.eps, torch.ones_like(std), std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("Standardize must be fitted on the training split first")
        return torch.sub(x, self.mean).div_(
            self.std
        )  # one new tensor, not two (55k images: 172 MB)


class MeanSubtract:
    """Subtract the per-feature mean of the training split; scales stay as they were."""

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> None:
        self.mean = x.double().mean(dim=0, keepdim=True).to(x.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise RuntimeError("MeanSubtract must be fitted on the training split first")
        return x - self.mean


class _Whiten:
    """Shared fit for PCA and ZCA whitening: eigendecomposition of the training covariance.

    Each example is flattened to D features for the statistics and the output is reshaped back
    to the input's shape. The covariance is accumulated chunk by chunk (float32 products summed
    in float64), decomposed in float64 with torch.linalg.eigh, and the D x D whitening matrix is
    stored as float32: fitting 55,000 Fashion-MNIST images (D = 784) takes about a second.

    eps is added to every eigenvalue before dividing by its square root, in the input's squared
    units (variance of pixels scaled to [0, 1]). Directions whose training variance is well above
    eps come out with unit variance; directions below it (pixel noise, pixels constant in
    training) are damped instead of blown up, and constant directions map to 0.
    """

    chunk = 4096

    def __init__(self, eps: float = 1e-2) -> None:
        if not eps > 0:
            raise ValueError(
                f"eps must be > 0 (it keeps zero-variance directions finite), got {eps}"
            )
        self.eps = eps
        self.mean: torch.Tensor | None = None  # (1, D) float32
        self.eigenvalues: torch.Tensor | None = None  # (D,) float64, largest first
        self.components: torch.Tensor | None = None  # (D, D) float32, column k = k-th eigenvector
        self.matrix: torch.Tensor | None = None  # (D, D) float32: output = (x - mean) @ matrix

    def fit(self, x: torch.Tensor) -> None:
        flat = x.reshape(len(x), -1)
        if len(flat) < 2:
            raise ValueError(f"whitening needs at least 2 training examples, got {len(flat)}")
        mean = flat.double().mean(dim=0, keepdim=True)
        cov = torch.zeros(flat.shape[1], flat.shape[1], dtype=torch.float64)
        for part in flat.split(self.chunk):
            centred = (part.double() - mean).float()
            cov += (centred.T @ centred).double()
        cov /= len(flat) - 1
        eigenvalues, vectors = torch.linalg.eigh(cov)
        eigenvalues, vectors = eigenvalues.flip(0).clamp_min(0.0), vectors.flip(1)
        # eigenvectors are defined up to sign: make each one's largest entry positive (reproducible)
        peak = vectors.gather(0, vectors.abs().argmax(dim=0, keepdim=True))
        vectors = vectors * torch.where(peak < 0, -1.0, 1.0)
        scale = (eigenvalues + self.eps).rsqrt()
        self.mean = mean.float()
        self.eigenvalues = eigenvalues
        self.components = vectors.float()
        self.matrix = self._matrix(vectors, scale).float()

    def _matrix(self, vectors: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.matrix is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted on the training split first")
        flat = x.reshape(len(x), -1).to(self.matrix.dtype)
        return ((flat - self.mean) @ self.matrix).reshape(x.shape)


class PCAWhiten(_Whiten):
    """PCA whitening: coordinates on the covariance's eigenvectors, divided by sqrt(eigenvalue + eps).

    Output feature k is the k-th principal component (largest training variance first), laid out
    in the input's shape so DataSpec is unchanged: for images the result is no longer an image.
    """

    def _matrix(self, vectors: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return vectors * scale  # U diag(s)


class ZCAWhiten(_Whiten):
    """ZCA whitening: PCA whitening rotated back, U diag(1/sqrt(eigenvalue + eps)) U^T.

    The output stays in input space (pixel k is still pixel k, images still look like images,
    with edges enhanced); of all whitening transforms it is the one closest to the centred input.
    """

    def _matrix(self, vectors: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return (vectors * scale) @ vectors.T  # U diag(s) U^T
