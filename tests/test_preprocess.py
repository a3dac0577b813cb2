"""The preprocess group: each option's effect, with statistics fitted on the training split only."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cfg

from lightdl import build
from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.preprocess import MeanSubtract, PCAWhiten, Standardize, ZCAWhiten
from lightdl.errors import ConfigError
from lightdl.paths import conf_dir, options

FITTED = {  # option -> its class and the statistics it fits
    "standardize": (Standardize, ("mean", "std")),
    "mean_subtract": (MeanSubtract, ("mean",)),
    "pca_whiten": (PCAWhiten, ("mean", "eigenvalues", "matrix")),
    "zca_whiten": (ZCAWhiten, ("mean", "eigenvalues", "matrix")),
}


def correlated(n: int = 4000, shape=(2, 3), seed: int = 0) -> torch.Tensor:
    """Full-rank data with strongly correlated features, a non-zero mean and any example shape."""
    generator = torch.Generator().manual_seed(seed)
    d = torch.Size(shape).numel()
    mixing = torch.randn(d, d, generator=generator) + 2.0 * torch.eye(d)
    z = torch.randn(n, d, generator=generator) * torch.linspace(0.5, 3.0, d)
    return (z @ mixing + 5.0).reshape(n, *shape)


def flat_cov(x: torch.Tensor) -> torch.Tensor:
    return torch.cov(x.reshape(len(x), -1).double().T)


def digits(tmp_path, preprocess: str, *overrides: str) -> InMemoryDataModule:
    return build.build_datamodule(make_cfg(tmp_path, f"preprocess={preprocess}", *overrides))


class Fixed(InMemoryDataModule):
    """A datamodule over given tensors, to change val/test while train stays the same."""

    num_classes, kind = 2, "vector"

    def __init__(self, splits: dict[str, Split], **kwargs) -> None:
        super().__init__(**kwargs)
        self.given = splits

    def load(self) -> dict[str, Split]:
        return dict(self.given)


def test_every_preprocess_yaml_has_a_two_or_three_line_header():
    for option in options("preprocess"):
        lines = (conf_dir() / "preprocess" / f"{option}.yaml").read_text().splitlines()
        header = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]
        assert 2 <= len(header) <= 3, f"preprocess/{option}.yaml: header {header}"
    assert {"none", "standardize", "mean_subtract", "pca_whiten", "zca_whiten"} <= set(
        options("preprocess")
    )


def test_mean_subtract_centres_training_data_and_keeps_its_scale():
    train, test = correlated(shape=(1, 2, 3)), correlated(n=500, shape=(1, 2, 3), seed=1) * 2
    prep = MeanSubtract()
    prep.fit(train)
    out = prep(train)
    assert out.shape == train.shape
    assert out.mean(0).abs().max() < 1e-4 < train.mean(0).abs().min()
    assert torch.allclose(out.std(0), train.std(0), atol=1e-4)
    assert torch.allclose(prep(test), test - train.mean(0), atol=1e-4)


@pytest.mark.parametrize("option", sorted(FITTED))
def test_statistics_ignore_val_and_test(option):
    """Same training split, very different val/test: identical statistics and training inputs."""
    train = (correlated(n=600, shape=(4,)), torch.zeros(600, dtype=torch.int64))
    cls, names = FITTED[option]
    runs = []
    for shift in (0.0, 100.0):
        other = correlated(n=100, shape=(4,), seed=7) * (1 + shift) + shift
        splits = {"train": train, "val": (other, train[1][:100]), "test": (-other, train[1][:100])}
        dm = Fixed(splits, preprocess=cls())
        dm.setup()
        runs.append(dm)
    for name in names:
        assert torch.equal(getattr(runs[0].preprocess, name), getattr(runs[1].preprocess, name))
    assert torch.equal(runs[0].splits["train"][0], runs[1].splits["train"][0])
    assert not torch.allclose(runs[0].splits["val"][0], runs[1].splits["val"][0])


def test_digits_statistics_are_those_of_the_training_split_by_hand(tmp_path):
    raw = digits(tmp_path, "none")
    x_train = raw.splits["train"][0].reshape(len(raw.splits["train"][0]), -1).double()
    x_all = torch.cat([raw.splits[s][0] for s in ("train", "val", "test")]).flatten(1).double()
    # the check is sensitive: statistics over all splits differ from the training ones
    assert (x_all.mean(0) - x_train.mean(0)).abs().max() > 1e-3

    standardize = digits(tmp_path, "standardize").preprocess
    assert torch.allclose(standardize.mean.flatten().double(), x_train.mean(0), atol=1e-6)
    kept = x_train.std(0) > 1e-6
    assert torch.allclose(standardize.std.flatten().double()[kept], x_train.std(0)[kept], atol=1e-5)

    for option in ("mean_subtract", "pca_whiten", "zca_whiten"):
        prep = digits(tmp_path, option).preprocess
        assert torch.allclose(prep.mean.flatten().double(), x_train.mean(0), atol=1e-6), option
    zca = digits(tmp_path, "zca_whiten").preprocess
    by_hand = torch.linalg.eigvalsh(torch.cov(x_train.T)).flip(0).clamp_min(0)
    assert torch.allclose(zca.eigenvalues, by_hand, atol=1e-6)


@pytest.mark.parametrize("cls", [PCAWhiten, ZCAWhiten])
def test_whitened_full_rank_data_has_identity_covariance(cls):
    x = correlated(shape=(2, 3))
    assert (flat_cov(x) - torch.eye(6)).abs().max() > 1.0  # strongly correlated, not unit scale
    prep = cls(eps=1e-6)
    prep.fit(x)
    out = prep(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert prep.matrix.dtype == torch.float32
    assert torch.allclose(flat_cov(out), torch.eye(6, dtype=torch.float64), atol=1e-3)
    assert out.reshape(len(x), -1).mean(0).abs().max() < 1e-3


@pytest.mark.parametrize("option", ["pca_whiten", "zca_whiten"])
def test_whitening_digits_with_constant_pixels_is_identity_where_there_is_variance(
    tmp_path, option
):
    """Digits has pixels that are 0 in every training image: their eigenvalues are 0.

    With eps added to every eigenvalue, output variance along eigenvector k is exactly
    lambda_k / (lambda_k + eps): ~1 where the training variance is well above eps, 0 (not inf or
    NaN) for constant pixels, in between for pixel-noise directions. The default eps is 1e-2 (pixels
    in [0, 1]); eps=1e-5 is nearly full whitening.
    """
    raw = digits(tmp_path, "none").splits["train"][0].flatten(1).double()
    lam = torch.linalg.eigvalsh(torch.cov(raw.T)).flip(0).clamp_min(0)
    assert (raw.std(0) == 0).sum() >= 1 and (lam < 1e-12).sum() >= 1
    for eps in (1e-2, 1e-5):
        dm = digits(tmp_path, option, f"preprocess.eps={eps}")
        out = dm.splits["train"][0]
        assert torch.isfinite(out).all() and out.shape == (len(raw), 1, 8, 8)
        got = torch.linalg.eigvalsh(flat_cov(out)).flip(0)
        assert torch.allclose(got, lam / (lam + eps), atol=2e-4)
        assert (got[lam > 100 * eps] > 0.99).all() and (got[lam < 1e-12].abs() < 1e-5).all()
        for split in ("val", "test"):
            assert torch.isfinite(dm.splits[split][0]).all()


def test_zca_stays_in_input_space_and_is_the_whitening_closest_to_the_input(tmp_path):
    raw = digits(tmp_path, "none").splits["train"][0]
    centred = (raw - raw.mean(0)).flatten(1)
    zca = digits(tmp_path, "zca_whiten").splits["train"][0].flatten(1)
    pca = digits(tmp_path, "pca_whiten").splits["train"][0].flatten(1)

    def pixel_correlation(out: torch.Tensor) -> torch.Tensor:
        varying = centred.std(0) > 0
        a, b = out[:, varying], centred[:, varying]
        return ((a - a.mean(0)) * b).mean(0) / (a.std(0) * b.std(0) + 1e-12)

    # pixel k of the ZCA output is still (an edge-enhanced) pixel k; PCA's feature k is not
    assert pixel_correlation(zca).mean() > 0.6 > 0.2 > pixel_correlation(pca).abs().mean()

    def distance(out: torch.Tensor) -> float:
        return float((out - centred).pow(2).sum(1).mean())

    generator = torch.Generator().manual_seed(0)
    rotations = [torch.linalg.qr(torch.randn(64, 64, generator=generator))[0] for _ in range(5)]
    assert all(distance(zca) < distance(zca @ q) for q in rotations)  # other whitenings
    assert distance(zca) < distance(pca)


def test_pca_and_zca_differ_by_a_rotation():
    x = correlated(shape=(6,))
    pca, zca = PCAWhiten(eps=1e-3), ZCAWhiten(eps=1e-3)
    pca.fit(x)
    zca.fit(x)
    p, z = pca(x), zca(x)
    assert not torch.allclose(p, z, atol=0.1)
    rotation = torch.linalg.lstsq(p.double(), z.double()).solution
    assert torch.allclose(rotation @ rotation.T, torch.eye(6, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(p.double() @ rotation, z.double(), atol=1e-4)
    # the rotation is U^T: back from eigenvector coordinates to input coordinates
    assert torch.allclose(rotation.float(), pca.components.T, atol=1e-4)
    # a rotation keeps lengths and angles: same Gram matrix
    assert torch.allclose(p @ p.T, z @ z.T, atol=1e-3)


def test_pca_orders_components_by_training_variance():
    x = correlated(shape=(6,))
    prep = PCAWhiten(eps=1e-6)
    prep.fit(x)
    lam = prep.eigenvalues
    assert (lam[:-1] >= lam[1:]).all()
    # before dividing by sqrt(lambda + eps), component k's variance is lambda_k
    projected = (x - prep.mean) @ prep.components
    assert torch.allclose(projected.double().var(0), lam, rtol=1e-3)


def test_whitening_is_reproducible_and_signs_are_fixed():
    x = correlated(shape=(6,))
    first, again = PCAWhiten(), PCAWhiten()
    first.fit(x)
    again.fit(x.flip(0))  # same data in another order: same transform (a sign flip would be 2x off)
    assert torch.allclose(first.components, again.components, atol=1e-3)
    assert torch.allclose(first.matrix, again.matrix, rtol=1e-2, atol=1e-3)
    peak = first.components.gather(0, first.components.abs().argmax(0, keepdim=True))
    assert (peak > 0).all()


@pytest.mark.parametrize("cls", [MeanSubtract, Standardize, PCAWhiten, ZCAWhiten])
def test_unfitted_preprocessing_refuses_to_run(cls):
    with pytest.raises(RuntimeError, match="fitted on the training split"):
        cls()(torch.zeros(3, 2))


@pytest.mark.parametrize("option", ["pca_whiten", "zca_whiten"])
def test_non_positive_eps_is_a_config_error(tmp_path, option):
    cfg = make_cfg(tmp_path, f"preprocess={option}", "preprocess.eps=0")
    with pytest.raises(ConfigError, match="eps must be > 0"):
        build.make(cfg, "preprocess")
