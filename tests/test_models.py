"""Every model is built from the data spec alone, and its loss falls in a few steps on tiny data."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cfg

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.mlp import MLP
from lightdl.paths import options

IMAGE_ONLY = {"lenet", "vgg", "resnet", "capsnet", "stn"}  # 2-D convolutions need (C, H, W)
TOKENS_ONLY = {"textcnn"}  # reads token ids through an embedding
# their own tasks (tests/test_seq2seq.py, test_word2vec.py): refused on classification data
OTHER_TASKS = {"seq2seq", "pointer", "skipgram"}
# generative models train with their own objective (tests/test_autoencoder.py, test_gan.py)
GENERATIVE = {"autoencoder", "vae", "gan", "dcgan", "cgan", "sgan"}
EXTRA = {
    "capsnet": ["loss=margin", "model.conv_channels=16"]
}  # capsule lengths are scored with the margin loss
LEARNERS = [
    m for m in options("model") if m != "transfer" and m not in OTHER_TASKS | GENERATIVE
]  # transfer: tests/test_transfer.py


@pytest.mark.parametrize("model", LEARNERS)
@pytest.mark.parametrize("data", ["digits", "moons"])
def test_model_learns(tmp_path, model, data):
    cfg = make_cfg(
        tmp_path,
        f"model={model}",
        f"data={data}",
        "optimizer=adam",
        "optimizer.lr=0.01",
        *EXTRA.get(model, []),
    )
    torch.manual_seed(0)
    datamodule = build.build_datamodule(cfg)
    if (data == "moons" and model in IMAGE_ONLY) or model in TOKENS_ONLY:
        with pytest.raises(ConfigError) as info:
            build.build_net(cfg, datamodule.spec, [])
        # one sentence saying what the model needs
        assert ("token" if model in TOKENS_ONLY else "image") in str(info.value)
        return
    net = build.build_net(cfg, datamodule.spec, [])
    loss_fn = build.build_loss(cfg, net, [])
    x, y = datamodule.splits["train"]
    x, y = x[:256], y[:256]
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    first = loss_fn(net(x), y).item()
    for _ in range(40):
        optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
    assert net(x).shape == (256, datamodule.spec.num_classes)
    assert loss.item() < 0.7 * first


def test_mlp_parameter_count_is_the_textbook_formula():
    spec = DataSpec(input_shape=(1, 28, 28), num_classes=10, kind="image")
    net = MLP(spec, hidden=[256, 128])
    widths = [784, 256, 128, 10]
    expected = sum(i * o + o for i, o in zip(widths, widths[1:], strict=False))
    assert sum(p.numel() for p in net.parameters()) == expected == 235_146


def test_recurrent_reads_images_row_by_row():
    from lightdl.models.recurrent import Recurrent

    spec = DataSpec(input_shape=(1, 28, 28), num_classes=10, kind="image")
    net = Recurrent(spec, cell="gru", hidden_size=16, bidirectional=True)
    assert net.rnn.input_size == 28 and net.steps == 28
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_lstm_forget_gate_bias_starts_at_one():
    from lightdl.models.recurrent import Recurrent

    spec = DataSpec(input_shape=(4,), num_classes=2, kind="vector")
    net = Recurrent(spec, cell="lstm", hidden_size=8, forget_bias=1.0)
    assert torch.all(net.rnn.bias_ih_l0[8:16] == 1.0) and torch.all(net.rnn.bias_hh_l0[8:16] == 0)


def test_summary_lists_layers_shapes_and_params():
    from lightdl.models.summary import summarize

    spec = DataSpec(input_shape=(1, 8, 8), num_classes=10, kind="image")
    text = summarize(MLP(spec, hidden=[32]), torch.zeros(2, 1, 8, 8))
    assert "(None, 32)" in text and "(None, 10)" in text
    assert "Trainable params: 2,410" in text  # 64*32+32 + 32*10+10


@pytest.mark.parametrize(
    ("model", "data", "says"),
    [
        ("seq2seq", "digits", "models that do: "),
        ("skipgram", "digits", "models that do: "),
        ("lstm", "words", "models that do: skipgram"),
        ("gru", "sequence_tasks", "models that do: pointer, seq2seq"),
        ("mlp", "text_topics", "token ids"),
        ("cnn", "text_topics", "token ids"),
    ],
)
def test_model_and_data_task_must_agree(tmp_path, model, data, says):
    """A model for another task, or without an embedding for token ids, gets one sentence."""
    cfg = make_cfg(tmp_path, f"model={model}", f"data={data}")
    datamodule = build.build_datamodule(cfg)
    with pytest.raises(ConfigError) as info:
        build.build_net(cfg, datamodule.spec, [])
    assert says in str(info.value) and str(info.value).count(". ") == 0
