"""The recurrent family: BPTT, gradient flow through time, directions, pooling, pyramidal halving."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.recurrent import Pyramidal, Recurrent

IMAGE = DataSpec((1, 28, 28), 10, "image")  # 28 steps of 28 pixels


def _sequence(steps: int) -> DataSpec:
    return DataSpec((steps,), 2, "vector")  # one feature per step


def test_bptt_gradient_equals_finite_differences():
    """Backpropagation through time on a 5-step Elman RNN: every d loss / d W_hh by central differences."""
    torch.manual_seed(0)
    net = Recurrent(_sequence(5), cell="rnn", hidden_size=3).double()
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.tensor([0, 1, 1, 0])

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(net(x), y)

    loss().backward()
    weight = net.rnn.weight_hh_l0
    numeric = torch.zeros_like(weight)
    eps = 1e-6
    with torch.no_grad():
        for i in range(weight.shape[0]):
            for j in range(weight.shape[1]):
                weight[i, j] += eps
                up = loss()
                weight[i, j] -= 2 * eps
                down = loss()
                weight[i, j] += eps
                numeric[i, j] = (up - down) / (2 * eps)
    assert weight.grad.abs().max() > 1e-4  # not vacuous
    assert torch.allclose(weight.grad, numeric, rtol=1e-5, atol=1e-8)


def _gradient_through_time(cell: str, steps: int = 100) -> float:
    """|| d (final hidden state) / d (first input) ||: how much the first step still matters."""
    torch.manual_seed(0)
    net = Recurrent(_sequence(steps), cell=cell, hidden_size=32, forget_bias=1.0)
    x = torch.randn(8, steps, 1, requires_grad=True)
    out, _ = net.rnn(x)
    out[:, -1].sum().backward()
    return float(x.grad[:, 0].norm())


def test_lstm_keeps_gradient_through_100_steps_where_the_vanilla_rnn_loses_it():
    lstm, rnn = _gradient_through_time("lstm"), _gradient_through_time("rnn")
    assert lstm > 1e3 * rnn, (lstm, rnn)


def test_bidirectional_doubles_the_output_size():
    x = torch.randn(3, 1, 28, 28)
    one, two = (
        Recurrent(IMAGE, hidden_size=16),
        Recurrent(IMAGE, hidden_size=16, bidirectional=True),
    )
    assert one.rnn(one._as_steps(x))[0].shape == (3, 28, 16)
    assert two.rnn(two._as_steps(x))[0].shape == (3, 28, 32)
    assert (one.head.in_features, two.head.in_features) == (16, 32)
    assert two(x).shape == (3, 10)


@pytest.mark.parametrize(
    ("steps", "layers", "lengths"),
    [(28, 3, [28, 14, 7]), (7, 3, [7, 3, 1]), (8, 4, [8, 4, 2, 1]), (2, 3, [2, 1, 1])],
)
def test_pyramidal_halves_the_steps_per_layer(steps, layers, lengths):
    net = Pyramidal(_sequence(steps), hidden_size=8, num_layers=layers)
    assert net(torch.randn(2, steps)).shape == (2, 2)
    assert net.lengths == lengths
    assert net.layers[1].input_size == 2 * 16  # two neighbouring steps, both directions


def test_output_pooling_over_time():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    nets = {
        o: Recurrent(IMAGE, hidden_size=8, output=o) for o in ("last", "mean", "max", "attention")
    }
    for net in nets.values():
        net.load_state_dict(nets["last"].state_dict(), strict=False)  # same recurrent weights
    out, _ = nets["last"].rnn(nets["last"]._as_steps(x))
    pooled = {
        "last": out[:, -1],
        "mean": out.mean(dim=1),
        "max": out.amax(dim=1),
    }
    for name, expected in pooled.items():
        net = nets[name]
        assert torch.allclose(net(x), net.head(expected), atol=1e-6)
    attention = nets["attention"]
    attention(x)
    weights = attention.attention.weights
    assert weights.shape == (4, 28) and torch.allclose(weights.sum(dim=1), torch.ones(4))
    expected = (weights.unsqueeze(-1) * out).sum(dim=1)
    assert torch.allclose(attention(x), attention.head(expected), atol=1e-6)


def test_bad_cell_and_output_are_one_sentence():
    with pytest.raises(ConfigError, match="model.output must be one of last, mean, max, attention"):
        Recurrent(IMAGE, output="first")
    with pytest.raises(ConfigError, match="model.cell must be one of rnn, lstm, gru"):
        Pyramidal(IMAGE, cell="transformer")


def test_output_delay_lets_a_one_way_rnn_use_right_context(tmp_path):
    """Per-step labels y_t = x_{t+2}: without delay the GRU has not read x_{t+2} yet and stays
    near chance (5 symbols: 0.2); delayed by 2 steps it reads it and labels almost every step."""
    from conftest import fit_net

    task = ("data=sequence_tasks", "data.task=lookahead", "data.shift=2", "data.max_length=12")
    small = ("data.vocab_size=5", "data.train_size=2000", "model=gru", "model.hidden_size=32")
    accuracy = {}
    for delay in (0, 2):
        _, trainer = fit_net(
            tmp_path / str(delay), *task, *small, f"model.delay={delay}", "optimizer.lr=0.01"
        )
        accuracy[delay] = float(trainer.callback_metrics["val/acc"])
    assert accuracy[0] < 0.35 and accuracy[2] > 0.9, accuracy


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["data=chars", "model.delay=1"], "would let a language model read the token"),
        (["data=digits", "model.delay=1"], "one label per sequence"),
        (["data=sequence_tasks", "data.task=lookahead", "model.delay=-1"], "model.delay must be"),
    ],
)
def test_delay_is_refused_where_it_cannot_apply(tmp_path, overrides, says):
    from conftest import make_cfg

    from lightdl import build

    cfg = make_cfg(tmp_path, "model=lstm", *overrides)
    with pytest.raises(ConfigError) as info:
        build.build_net(cfg, build.build_datamodule(cfg).spec, [])
    assert says in str(info.value)
