"""Capsule network (squash, routing, margin loss) and spatial transformer: their effects, end to end."""

from __future__ import annotations

import pytest
import torch
from conftest import fit_net, make_cfg
from torch import nn

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.init import he_normal
from lightdl.losses import MarginLoss
from lightdl.models.capsnet import CapsNet, route, squash
from lightdl.models.stn import STN

SPECS = [
    DataSpec((1, 8, 8), 10, "image"),
    DataSpec((1, 28, 28), 10, "image"),
    DataSpec((3, 32, 32), 7, "image"),
]


def test_squash_keeps_direction_and_bounds_length():
    torch.manual_seed(0)
    s = torch.randn(200, 16) * torch.logspace(-3, 2, 200).unsqueeze(1)  # tiny to long vectors
    v = squash(s)
    length, raw = v.norm(dim=-1), s.norm(dim=-1)
    assert (length >= 0).all() and (length < 1).all()
    assert torch.allclose(length, raw**2 / (1 + raw**2), rtol=1e-5, atol=1e-7)
    cosine = torch.nn.functional.cosine_similarity(v, s, dim=-1)
    assert torch.allclose(cosine, torch.ones(200), atol=1e-5)
    assert length[0] < 1e-4 < 0.999 < length[-1]  # short shrinks to ~0, long to just below 1
    assert torch.equal(squash(torch.zeros(3, 8)), torch.zeros(3, 8))  # finite at 0


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "x".join(map(str, s.input_shape)))
def test_both_models_give_one_score_per_class(spec):
    torch.manual_seed(0)
    x = torch.randn(4, *spec.input_shape)
    lengths = CapsNet(spec, conv_channels=16, primary_caps=4)(x)
    assert lengths.shape == (4, spec.num_classes)
    assert (lengths > 0).all() and (lengths < 1).all()
    assert STN(spec)(x).shape == (4, spec.num_classes)
    assert STN(spec, classifier="mlp")(x).shape == (4, spec.num_classes)


def test_routing_iterations_are_honoured():
    torch.manual_seed(0)
    u_hat = torch.randn(3, 20, 5, 4)
    v1, c1 = route(u_hat, 1)
    v3, c3 = route(u_hat, 3)
    assert torch.allclose(c1, torch.full_like(c1, 1 / 5))  # one pass: uniform coupling
    for c in (c1, c3):  # each input capsule shares itself out over the classes
        assert torch.allclose(c.sum(dim=2), torch.ones(3, 20))
    assert not torch.allclose(c3, c1, atol=1e-3) and not torch.allclose(v3, v1, atol=1e-3)
    # routing by agreement: class capsules grow when their inputs agree
    agreeing = torch.randn(1, 1, 1, 4).expand(1, 20, 5, 4).clone()
    agreeing[:, :, 1:] = torch.randn(1, 20, 4, 4)  # class 0 agreed on, others noise
    _, coupling = route(agreeing, 3)
    assert (coupling[0, :, 0] > 1 / 5).float().mean() > 0.5

    spec = SPECS[0]
    torch.manual_seed(1)
    net = CapsNet(spec, conv_channels=16, routing_iterations=1)
    x = torch.randn(2, *spec.input_shape)
    one = net(x)
    assert torch.allclose(net.last_coupling, torch.full_like(net.last_coupling, 0.1))
    net.routing_iterations = 3
    assert not torch.allclose(net(x), one)
    assert torch.allclose(net.last_coupling.sum(dim=2), torch.ones(2, net.num_primary))


def test_margin_loss_matches_its_formula():
    loss = MarginLoss(m_plus=0.9, m_minus=0.1, lam=0.5)
    lengths = torch.tensor([[0.5, 0.3, 0.05], [0.95, 0.2, 0.0]])
    target = torch.tensor([0, 1])
    # example 0: (0.9-0.5)^2 + 0.5*(0.3-0.1)^2 = 0.16 + 0.02; example 1: 0.5*(0.95-0.1)^2 + (0.9-0.2)^2
    expected = ((0.16 + 0.02) + (0.5 * 0.85**2 + 0.7**2)) / 2
    assert loss(lengths, target).item() == pytest.approx(expected)
    perfect = torch.tensor([[0.9, 0.1, 0.0], [0.05, 0.95, 0.1]])
    assert loss(perfect, target).item() == 0.0


def test_stn_starts_as_the_identity():
    spec = SPECS[2]
    torch.manual_seed(0)
    net = STN(spec)
    he_normal(net)  # a re-initialising init group (applied after build) must not undo it
    x = torch.randn(5, *spec.input_shape)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(5, 2, 3)
    assert torch.equal(net.theta(x), identity)
    assert torch.allclose(net.transform(x), x, atol=1e-5)


def test_refusals_are_one_sentence():
    vector = DataSpec((64,), 10, "vector")
    for model in (CapsNet, STN):
        with pytest.raises(ConfigError, match="needs image data"):
            model(vector)
    with pytest.raises(ConfigError, match="kernel=9 is too large for 8x8"):
        CapsNet(SPECS[0], kernel=9)
    with pytest.raises(ConfigError, match="classifier must be one of"):
        STN(SPECS[0], classifier="resnet")


def test_configs_build_on_digits(tmp_path):
    spec = DataSpec((1, 8, 8), 10, "image")  # data=digits
    for overrides, kind in ((("model=capsnet", "loss=margin"), CapsNet), (("model=stn",), STN)):
        cfg = make_cfg(tmp_path, *overrides)
        net = build.build_net(cfg, spec, build.build_regularizers(cfg))
        assert isinstance(net, kind)
        loss = build.build_loss(cfg, net, [])
        assert type(loss) is (MarginLoss if kind is CapsNet else nn.CrossEntropyLoss)
        assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    cfg = make_cfg(tmp_path, "model=stn", "regularizer=[dropout]")
    with pytest.raises(ConfigError, match="does not apply to STN"):
        build.build_net(cfg, spec, build.build_regularizers(cfg))


@pytest.mark.parametrize(
    ("overrides", "epochs"),
    [(("model=capsnet", "loss=margin", "model.conv_channels=16"), 2), (("model=stn",), 3)],
    ids=["capsnet", "stn"],
)
def test_trains_on_digits(tmp_path, overrides, epochs):
    import lightning as L

    losses = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            losses.append(float(trainer.callback_metrics["train/loss"]))

    fit_net(tmp_path, *overrides, callbacks=[Record()], epochs=epochs)
    assert len(losses) == epochs and losses[-1] < 0.8 * losses[0], losses


def test_reconstruction_decoder_trains_through_its_auxiliary_loss(tmp_path):
    """model.reconstruction=true: the decoder's error joins the loss (train/aux_loss) and falls."""
    import lightning as L

    aux = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            aux.append(float(trainer.callback_metrics["train/aux_loss"]))

    overrides = ("model=capsnet", "loss=margin", "model.conv_channels=16", "preprocess=none")
    net, _ = fit_net(tmp_path, *overrides, "model.reconstruction=true", callbacks=[Record()])
    assert len(aux) == 3 and aux[-1] < 0.8 * aux[0], aux
    cfg = make_cfg(tmp_path, *overrides, "model.reconstruction=true")
    L.seed_everything(0, verbose=False)
    untrained = build.build_net(cfg, DataSpec((1, 8, 8), 10, "image"), [])
    assert not torch.equal(untrained.decoder[0].weight, net.decoder[0].weight)  # only aux moves it
