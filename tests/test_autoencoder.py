"""Autoencoder and VAE (model=autoencoder, vae) trained by the reconstruction task."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import fit_net, make_cfg
from torch.distributions import Normal, kl_divergence

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.autoencoder import VAE, Autoencoder, kl
from lightdl.tasks.reconstruction import reconstruction_loss

GENERATIVE = ["model=vae", "preprocess=none", "optimizer.lr=0.003"]


class Record(L.Callback):
    """The logged metrics at the end of each epoch (after its validation pass)."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def image(shape) -> DataSpec:
    return DataSpec(input_shape=shape, num_classes=10, kind="image")


def test_kl_is_the_closed_form_for_diagonal_gaussians():
    torch.manual_seed(0)
    mu, logvar = torch.randn(6, 5) * 2, torch.randn(6, 5)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl(mu, logvar), expected)
    assert torch.all(kl(torch.zeros(3, 4), torch.zeros(3, 4)) == 0)  # q = prior: no divergence
    # the VAE's KL term is that of its encoder's (mu, logvar)
    net = VAE(image((1, 8, 8)), hidden=[16], latent_dim=5)
    x = torch.rand(6, 1, 8, 8)
    mu, logvar = net.encode(x)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(net.terms(x)[1], expected)


def test_reparameterised_codes_have_the_encoders_mean_and_spread():
    net = VAE(image((1, 8, 8)), hidden=[16], latent_dim=3)
    mu = torch.tensor([[1.0, -2.0, 0.5]]).expand(20000, 3)
    logvar = torch.tensor([[0.0, 2.0, -2.0]]).expand(20000, 3)
    z = net.sample(mu, logvar, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), torch.exp(0.5 * logvar[0]), atol=0.05, rtol=0)
    mu.requires_grad_(True)  # the sample is differentiable in mu: dz/dmu = 1
    net.sample(mu, logvar).sum().backward()
    assert torch.all(mu.grad == 1)


@pytest.mark.parametrize("model", [Autoencoder, VAE])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_conv_kind_maps_images_back_to_their_shape(model, shape):
    net = model(image(shape), hidden=[32], latent_dim=6, kind="conv", channels=[8, 16])
    x = torch.rand(4, *shape)
    out = net.reconstruct(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    code = net.encode(x)
    assert (code[0] if isinstance(code, tuple) else code).shape == (4, 6)
    convs = [m for m in net.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (2, 2)]


def test_conv_kind_refuses_sizes_it_cannot_halve_twice():
    with pytest.raises(ConfigError, match="multiples of 4"):
        Autoencoder(image((1, 30, 30)), kind="conv")


@pytest.mark.parametrize("latent", [2, 7])
def test_latent_size_is_configurable(tmp_path, latent):
    cfg = make_cfg(tmp_path, "model=vae", "preprocess=none", f"model.latent_dim={latent}")
    spec = build.build_datamodule(cfg).spec
    net = build.build_net(cfg, spec, [])
    mu, logvar = net.encode(torch.rand(5, 1, 8, 8))
    assert net.latent_dim == latent and mu.shape == logvar.shape == (5, latent)
    ae = Autoencoder(spec, hidden=[16], latent_dim=latent)
    assert ae.encode(torch.rand(5, 1, 8, 8)).shape == (5, latent)


def test_autoencoder_reconstruction_error_falls_on_digits(tmp_path):
    """digits are 1x8x8 pixels in [0, 1] (preprocess=none keeps them there)."""
    record = Record()
    net, trainer = fit_net(
        tmp_path,
        "model=autoencoder",
        "preprocess=none",
        "optimizer.lr=0.003",
        callbacks=[record],
        epochs=4,
    )
    val = [e["val/recon"] for e in record.epochs]
    assert all(b < a for a, b in zip(val, val[1:], strict=False)), val
    assert val[-1] < 0.85 * val[0], val
    # and it is the binary cross-entropy summed over 64 pixels of the reconstructions
    x = trainer.datamodule.splits["val"][0]
    net.eval()
    with torch.no_grad():
        direct = torch.nn.functional.binary_cross_entropy(net.reconstruct(x), x, reduction="sum")
    assert direct.item() / len(x) == pytest.approx(val[-1], rel=1e-3)


def test_standardized_inputs_are_refused_with_one_sentence(tmp_path):
    cfg = make_cfg(tmp_path, "model=autoencoder")  # preprocess=standardize by default
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    with pytest.raises(ConfigError) as info:
        build.build_task(cfg, net, datamodule, [])
    text = str(info.value)
    assert "preprocess=none" in text and "[0, 1]" in text and text.count(". ") == 0


def test_another_loss_and_non_image_data_are_refused(tmp_path):
    cfg = make_cfg(tmp_path, "model=vae", "preprocess=none", "loss=mse")
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    with pytest.raises(ConfigError, match="its own reconstruction loss"):
        build.build_task(cfg, net, datamodule, [])
    moons = DataSpec(input_shape=(2,), num_classes=2, kind="vector")
    with pytest.raises(ConfigError, match="reconstructs images"):
        VAE(moons)


def test_vae_logs_loss_as_recon_plus_beta_kl_and_generates_images(tmp_path):
    record = Record()
    net, trainer = fit_net(
        tmp_path, *GENERATIVE, "model.beta=0.5", "model.latent_dim=4", callbacks=[record], epochs=3
    )
    for split in ("train", "val"):
        m = record.epochs[-1]
        assert m[f"{split}/kl"] > 0.1  # codes carry information (after an early collapse)
        expected = m[f"{split}/recon"] + 0.5 * m[f"{split}/kl"]
        assert m[f"{split}/loss"] == pytest.approx(expected, rel=1e-5)
    net.eval()
    with torch.no_grad():
        samples = net.generate(torch.randn(5, net.latent_dim))
    assert samples.shape == (5, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1


def test_labels_are_never_read(tmp_path):
    cfg = make_cfg(tmp_path, "model=vae", "preprocess=none")
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    x = datamodule.splits["val"][0][:32]
    task._eval_start()
    task._eval_step((x, None))  # no labels at all
    recon, kl_sum, count = task.eval_sums
    assert count == 32 and recon > 0 and kl_sum >= 0


def test_reconstruction_loss_is_summed_bce_per_example():
    x = torch.rand(3, 1, 4, 4)
    logits = torch.randn(3, 1, 4, 4)
    expected = torch.nn.functional.binary_cross_entropy(
        torch.sigmoid(logits), x, reduction="none"
    ).sum(dim=(1, 2, 3))
    torch.testing.assert_close(reconstruction_loss(logits, x), expected)
