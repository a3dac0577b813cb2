"""Sequence to sequence: the synthetic tasks, attention, encoder packing, greedy and beam decoding,
scheduled sampling, the pointer network, and short training runs that learn reverse and sort."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import fit_net, make_cfg

from lightdl.data.sequence_tasks import EOS_ID, MONTHS, SequenceTasks
from lightdl.errors import ConfigError
from lightdl.models.attention import Attention
from lightdl.models.pointer import Pointer
from lightdl.models.seq2seq import Seq2Seq
from lightdl.tasks.seq2seq import check_sampling, sampling_probability


@pytest.fixture(autouse=True)
def _one_thread():
    """The decoder runs one small step at a time: one thread avoids contention on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tasks(task: str, **kwargs) -> SequenceTasks:
    sizes = dict(train_size=200, val_size=50, test_size=50)
    data = SequenceTasks(task=task, **{**sizes, **kwargs})
    data.setup()
    return data


def symbols(data: SequenceTasks, ids: torch.Tensor) -> list[int]:
    return [int(s) for s in data.decode(ids).split()]


# --- data -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["copy", "reverse", "sort"])
def test_symbol_task_targets_are_right(task):
    data = tasks(task, min_length=2, max_length=9, vocab_size=7)
    spec = data.spec
    x, y = data.splits["train"]
    assert spec.input_shape == (9,) and spec.seq_len == 10 and spec.vocab_size == 10
    assert x.shape == (200, 9) and y.shape == (200, 10)
    expected = {"copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": sorted}[task]
    lengths = set()
    for source, target in zip(x, y, strict=True):
        n = int((source != 0).sum())
        lengths.add(n)
        assert (source[n:] == 0).all() and (source[:n] >= 3).all()  # padding only at the end
        assert symbols(data, target) == expected(symbols(data, source))
        assert target[n] == EOS_ID and (target[n + 1 :] == 0).all()
    assert lengths == set(range(2, 10))  # every length in [min_length, max_length] occurs


def test_dates_targets_are_the_iso_dates():
    import datetime

    data = tasks("dates")
    x, y = data.splits["test"]
    assert data.spec.seq_len == 11
    months = {m: i + 1 for i, m in enumerate(MONTHS)} | {m[:3]: i + 1 for i, m in enumerate(MONTHS)}
    seen = set()
    for source, target in zip(x, y, strict=True):
        human, iso = data.decode(source), data.decode(target)
        date = datetime.date.fromisoformat(iso)  # a valid ISO date, zero-padded
        parts = human.replace(",", "").replace("/", " ").replace(".", " ").replace("-", " ").split()
        if "/" in human:  # 03/03/21: day first, two-digit year (00-49 -> 20xx)
            day, month, yy = map(int, parts)
            year = 2000 + yy if yy < 50 else 1900 + yy
            seen.add("dd/mm/yy")
        elif "-" in human:
            year, month, day = map(int, parts)
            seen.add("y-m-d")
        elif parts[0] in months:
            month, day, year = months[parts[0]], int(parts[1]), int(parts[2])
            seen.add("month first")
        elif parts[1] in months:
            day, month, year = int(parts[0]), months[parts[1]], int(parts[2])
            seen.add("day month")
        else:
            day, month, year = map(int, parts)
            seen.add("d.m.y")
        assert (year, month, day) == (date.year, date.month, date.day), human
    assert len(seen) == 5


def test_adding_task_is_sequence_classification():
    pytest.importorskip("lightdl.data.adding")
    data = tasks("adding", max_length=12)
    spec = data.spec
    x, y = data.splits["train"]
    assert (spec.input_shape, spec.num_classes, spec.kind, spec.task) == (
        (12, 2),
        19,
        "sequence",
        "classification",
    )
    assert x.shape == (200, 12, 2) and y.dtype == torch.int64 and int(y.max()) <= 18


def test_same_seed_same_data_and_splits_differ():
    a, b = tasks("reverse", split_seed=3), tasks("reverse", split_seed=3)
    assert torch.equal(a.splits["train"][0], b.splits["train"][0])
    assert not torch.equal(a.splits["val"][0], a.splits["test"][0])


# --- attention and encoder --------------------------------------------------------------------


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_attention_weights_sum_to_one_and_skip_padding(score):
    torch.manual_seed(0)
    attention = Attention(score, 8, 8)
    keys, query = torch.randn(4, 6, 8), torch.randn(4, 8)
    mask = torch.arange(6) < torch.tensor([6, 3, 1, 4])[:, None]
    context, weights = attention(query, keys, mask)
    assert torch.allclose(weights.sum(dim=1), torch.ones(4))
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    assert torch.allclose(context, (weights[:, :, None] * keys).sum(dim=1), atol=1e-6)
    # padding values cannot leak into the context
    noisy = keys.masked_fill(~mask[:, :, None], 1e3)
    assert torch.allclose(attention(query, noisy, mask)[0], context, atol=1e-5)


def test_decoder_attention_ignores_source_padding():
    data = tasks("reverse", min_length=2, max_length=8)
    torch.manual_seed(0)
    model = Seq2Seq(data.spec, hidden_size=16, embedding_dim=8, attention="additive").eval()
    x = data.splits["train"][0][:32]
    model.greedy(x)
    mask = x != 0
    assert torch.allclose(model.weights.sum(dim=1), torch.ones(32))
    assert (model.weights[~mask] == 0).all()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_packed_encoder_matches_each_sequence_alone(cell):
    data = tasks("copy", min_length=1, max_length=7)
    torch.manual_seed(0)
    model = Seq2Seq(data.spec, cell=cell, hidden_size=12, embedding_dim=6).eval()
    x = data.splits["train"][0][:16]
    out, mask, final = model.encode(x)
    for i, row in enumerate(x):
        n = int((row != 0).sum())
        alone_out, _, alone_final = model.encode(row[None, :n])
        assert torch.allclose(out[i, :n], alone_out[0], atol=1e-6)
        assert (out[i, n:] == 0).all() and mask[i].sum() == n
        for batched, single in zip(final, alone_final, strict=True):
            assert torch.allclose(batched[i], single[0], atol=1e-6)


# --- decoding ---------------------------------------------------------------------------------


def _check_beam_against_greedy(model, x, raw_fraction: float = 0.0):
    greedy_tokens, greedy_score = model.greedy(x)
    one_tokens, one_score = model.beam_search(x, 1)
    assert torch.equal(one_tokens, greedy_tokens)  # a beam of one is greedy decoding
    assert torch.allclose(one_score, greedy_score)
    gains = []
    for k in (3, 5):
        tokens, score = model.beam_search(x, k)
        assert (score >= greedy_score - 1e-5).all()  # never below greedy
        # the score is the sequence's own log-probability under teacher forcing
        y_in = torch.cat([torch.ones_like(tokens[:, :1]), tokens[:, :-1]], dim=1)
        logp = model.teacher_forced(x, y_in).log_softmax(-1).gather(2, tokens[..., None])[..., 0]
        ended = (tokens == EOS_ID).cumsum(dim=1) - (tokens == EOS_ID).long() > 0  # after <eos>
        assert torch.allclose(logp.masked_fill(ended, 0).sum(dim=1), score, atol=1e-3)
        # beam search by itself (without the greedy safeguard) is at least as good that often
        own = model.beam_search(x, k, keep_greedy=False)[1]
        assert (own >= greedy_score - 1e-5).float().mean() >= raw_fraction
        gains.append(float((score - greedy_score).mean()))
    return gains


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_beam_search_never_below_greedy_untrained(attention):
    data = tasks("reverse", train_size=300, max_length=8)
    torch.manual_seed(1)
    model = Seq2Seq(data.spec, hidden_size=32, embedding_dim=16, attention=attention).eval()
    gains = _check_beam_against_greedy(model, data.splits["train"][0])
    assert min(gains) > 0  # on average, beams find likelier sequences than greedy


def test_beam_search_never_below_greedy_after_training(tmp_path):
    net, _ = fit_net(tmp_path, *SMALL_REVERSE, "model.attention=dot", epochs=1)
    data = tasks("reverse", train_size=300, min_length=3, max_length=6, vocab_size=8)
    gains = _check_beam_against_greedy(net.eval(), data.splits["train"][0], raw_fraction=0.95)
    assert min(gains) > 0


def test_forward_decodes_with_the_configured_beam():
    data = tasks("sort", max_length=6)
    torch.manual_seed(0)
    model = Seq2Seq(data.spec, hidden_size=16, embedding_dim=8, beam_size=4).eval()
    x = data.splits["train"][0][:20]
    assert torch.equal(model(x), model.beam_search(x, 4)[0])
    assert model(x).shape == (20, data.spec.seq_len)


# --- scheduled sampling -----------------------------------------------------------------------


def test_sampling_probability_follows_its_schedule():
    assert sampling_probability(500, "none") == 0.0
    linear = dict(schedule="linear", start=0.1, end=0.5, k=100)
    assert [sampling_probability(s, **linear) for s in (0, 50, 100, 400)] == pytest.approx(
        [0.1, 0.3, 0.5, 0.5]
    )
    exponential = dict(schedule="exponential", start=0.0, end=0.4, k=0.9)
    for s in (0, 1, 10, 50):
        assert sampling_probability(s, **exponential) == pytest.approx(0.4 - 0.4 * 0.9**s)
    sigmoid = dict(schedule="inverse_sigmoid", start=0.0, end=1.0, k=10)
    for s in (0, 10, 30, 60):
        assert sampling_probability(s, **sigmoid) == pytest.approx(1 - 10 / (10 + math.exp(s / 10)))
    for options in (linear, exponential, sigmoid):
        values = [sampling_probability(s, **options) for s in range(0, 2000, 7)]
        assert all(a <= b + 1e-12 for a, b in zip(values, values[1:], strict=False))  # monotone
        assert values[-1] == pytest.approx(options["end"], abs=1e-3)


def test_fed_back_fraction_matches_the_probability():
    data = tasks("reverse", train_size=2000, max_length=8)
    x, y = data.splits["train"]
    y_in = torch.cat([torch.ones_like(y[:, :1]), y[:, :-1]], dim=1)
    model = Seq2Seq(data.spec, hidden_size=8, embedding_dim=4)
    generator = torch.Generator().manual_seed(0)
    for p in (0.0, 0.25, 0.7):
        model.teacher_forced(x, y_in, sample_prob=p, generator=generator)
        fed = model.fed_back
        assert not fed[:, 0].any()  # the first input is always <bos>
        assert float(fed[:, 1:].float().mean()) == pytest.approx(p, abs=0.01)  # 16,000 draws


def test_training_logs_the_schedule_and_feeds_back_that_often(tmp_path):
    overrides = [*SMALL_REVERSE, "data.train_size=640", "data.batch_size=64"]
    sampling = ["model.scheduled_sampling.schedule=linear", "model.scheduled_sampling.k=20"]
    sampling += ["model.scheduled_sampling.start=0.2", "model.scheduled_sampling.end=0.6"]
    _, trainer = fit_net(tmp_path, *overrides, *sampling, epochs=1)
    metrics = trainer.callback_metrics
    expected = sum(sampling_probability(s, "linear", 0.2, 0.6, 20) for s in range(10)) / 10
    assert float(metrics["train/sample_prob"]) == pytest.approx(expected)  # steps 0..9
    assert float(metrics["train/fed_back"]) == pytest.approx(expected, abs=0.05)  # 3,840 draws


# --- training ---------------------------------------------------------------------------------

SMALL_REVERSE = [
    "data=sequence_tasks",
    "data.task=reverse",
    "data.min_length=3",
    "data.max_length=6",
    "data.vocab_size=8",
    "data.train_size=2000",
    "data.val_size=200",
    "data.test_size=200",
    "data.batch_size=64",
    "preprocess=none",
    "model=seq2seq",
    "model.hidden_size=48",
    "model.embedding_dim=16",
    "optimizer.lr=0.01",
    "callbacks=[]",
]


def test_seq2seq_with_attention_learns_reverse(tmp_path):
    _, trainer = fit_net(tmp_path, *SMALL_REVERSE, epochs=3)
    metrics = trainer.callback_metrics
    assert float(metrics["val/exact_match"]) > 0.85
    assert float(metrics["val/token_acc"]) > 0.95
    assert float(metrics["train/sample_prob"]) == 0.0


def test_pointer_network_learns_to_sort(tmp_path):
    overrides = [o for o in SMALL_REVERSE if not o.startswith(("model", "data.task", "data.m"))]
    _, trainer = fit_net(
        tmp_path,
        *overrides,
        "data.task=sort",
        "data.min_length=5",
        "data.max_length=8",
        "data.vocab_size=10",
        "model=pointer",
        "model.hidden_size=48",
        epochs=2,
    )
    assert float(trainer.callback_metrics["val/exact_match"]) > 0.9


def test_pointer_outputs_are_input_tokens():
    data = tasks("sort", min_length=5, max_length=8)
    torch.manual_seed(0)
    model = Pointer(data.spec, hidden_size=16, embedding_dim=8).eval()
    x = data.splits["train"][0]
    for tokens in (model.greedy(x)[0], model.beam_search(x, 3)[0]):
        for source, out in zip(x, tokens, strict=True):
            emitted = [int(t) for t in out if t > EOS_ID]
            available = [int(t) for t in source if t > 0]
            # each symbol at most as often as the source holds it (used positions are masked)
            assert all(emitted.count(s) <= available.count(s) for s in set(emitted))


# --- bad options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["model.attention=foo"], "model.attention"),
        (["model.beam_size=0"], "model.beam_size"),
        (["model.cell=rnn"], "model.cell"),
        (["data.task=foo"], "data.task"),
        (["data.max_length=2"], "data.max_length"),
        (["model.scheduled_sampling.schedule=cosine"], "scheduled_sampling.schedule"),
        (["model.scheduled_sampling.k=2"], "scheduled_sampling.k"),
        (["model=pointer", "data.task=dates"], "model=pointer"),
        (["model=mlp"], "models that do: pointer, seq2seq"),
        (["+data.label_noise=0.3"], "data.label_noise applies to class labels"),
        (["+data.train_per_class=5"], "data.train_per_class applies to class labels"),
    ],
)
def test_bad_options_are_one_sentence(tmp_path, overrides, words):
    from lightdl import build

    base = [o for o in SMALL_REVERSE if not o.startswith("model")]
    if not any(o.startswith("model=") for o in overrides):
        base.append("model=seq2seq")
    if "model.scheduled_sampling.k=2" in overrides:
        base.append("model.scheduled_sampling.schedule=exponential")
    cfg = make_cfg(tmp_path, *base, *overrides)
    with pytest.raises(ConfigError) as error:
        data = build.build_datamodule(cfg)
        net = build.build_net(cfg, data.spec, [])
        build.build_task(cfg, net, data, [])
    message = str(error.value)
    assert words in message and message.count(". ") == 0 and message.endswith(".")


def test_check_sampling_fills_defaults_and_refuses_unknown_keys():
    assert check_sampling(None)["schedule"] == "none"
    with pytest.raises(ConfigError, match="scheduled_sampling.speed"):
        check_sampling({"speed": 2})
