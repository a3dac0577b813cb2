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
        return (x - self.mean) / self.std
