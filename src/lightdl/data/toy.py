"""Small datasets that are always available offline: scikit-learn's digits, two moons, XOR."""

from __future__ import annotations

import numpy as np
import torch

from lightdl.data.base import InMemoryDataModule, Split


class _HeldOut(InMemoryDataModule):
    """Carves test and validation sets from one array of examples with a fixed seed."""

    def __init__(self, test_size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.test_size = test_size

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def load(self) -> dict[str, Split]:
        x, y = self.arrays()
        x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed + 1))
        test, train = order[: self.test_size], order[self.test_size :]
        return {"train": (x[train], y[train]), "test": (x[test], y[test])}


class Digits(_HeldOut):
    """scikit-learn's 1,797 8x8 handwritten digits, scaled to [0, 1], as 1x8x8 images."""

    num_classes = 10
    kind = "image"

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images / 16.0)[:, None, :, :], digits.target


class _Sampled2D(_HeldOut):
    """A generated 2-D, 2-class problem: n_samples points with `noise` jitter."""

    num_classes = 2
    kind = "vector"

    def __init__(self, n_samples: int = 2000, noise: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.noise = n_samples, noise


class Moons(_Sampled2D):
    """Two interleaving half-circles in 2-D (scikit-learn's make_moons)."""

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import make_moons

        return make_moons(self.n_samples, noise=self.noise, random_state=self.split_seed)


class XOR(_Sampled2D):
    """Points uniform in [-1, 1]^2, class 1 where x1*x2 > 0, with Gaussian jitter on the inputs."""

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.split_seed)
        points = rng.uniform(-1, 1, size=(self.n_samples, 2))
        labels = (points[:, 0] * points[:, 1] > 0).astype(np.int64)
        return points + rng.normal(0, self.noise, size=points.shape), labels
