"""Character-level language modelling: data=chars, LanguageModelTask, sampling, TextSamples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import fit_net, make_cfg

from lightdl import build
from lightdl.callbacks.history import History
from lightdl.callbacks.text_samples import TextSamples
from lightdl.data.chars import Chars
from lightdl.errors import ConfigError
from lightdl.tasks.language_model import LanguageModelTask, sample

PATTERN = "the cat sat on the mat. "
PROSE = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the winter "
    "of despair, we had everything before us, we had nothing before us.\n"
)
TINY_LSTM = ("model=lstm", "model.hidden_size=32", "model.embedding.dim=16")


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def chars_cfg(tmp_path, path, *overrides):
    return ("data=chars", f"data.path={path}", *TINY_LSTM, *overrides)


def test_windows_are_the_text_shifted_by_one_and_the_vocab_covers_it(tmp_path):
    text = PROSE * 3 + "~~"  # "~" only in the test text: not in the vocabulary, read as <unk>
    data = Chars(path=str(write(tmp_path, "prose.txt", text)), seq_len=7, max_chars=None)
    spec = data.spec
    x, y = data.splits["train"]
    assert x.shape == y.shape and x.shape[1] == 7 and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x one step ahead
    assert torch.equal(x[1:, 0], y[:-1, -1])  # consecutive windows: every character a target once
    assert data.vocab.decode(x[:, 0].tolist()) == text[: 7 * len(x) : 7]
    assert data.vocab.decode(x.flatten().tolist()) == text[: x.numel()]
    assert set(spec.vocab) == set(PROSE) | {"<pad>", "<unk>"} and spec.vocab[0] == "<pad>"
    assert (spec.kind, spec.task, spec.seq_len) == ("tokens", "language_model", 7)
    assert spec.vocab_size == spec.num_classes == len(set(PROSE)) + 2 == data.num_classes
    assert data.vocab.encode("~") == [data.vocab.stoi["<unk>"]]
    # contiguous splits: the test text is the end of the file, validation just before it
    n = len(text)
    vx, _ = data.splits["val"]
    tx, ty = data.splits["test"]
    test_start = n - round(n * 0.05)
    expected = text[test_start : test_start + tx.numel()].replace("~", "<unk>")
    assert data.vocab.decode(tx.flatten().tolist()) == expected
    assert data.vocab.decode(vx[0].tolist()) == text[test_start - round(n * 0.05) :][:7]
    assert int(ty[-1, -1]) == data.vocab.encode(text[test_start + ty.numel()])[0]


def test_bad_texts_and_options_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match=r"data.path .*empty\.$"):
        Chars(path=str(write(tmp_path, "empty.txt", " \n"))).setup()
    with pytest.raises(ConfigError, match=r"does not exist\.$"):
        Chars(path=str(tmp_path / "missing.txt")).setup()
    with pytest.raises(ConfigError, match=r"validation text has \d+ characters.*seq_len"):
        Chars(path=str(write(tmp_path, "short.txt", "abcdefghij" * 30)), seq_len=50).setup()
    with pytest.raises(ConfigError, match="temperature"):
        TextSamples(temperatures=[1.0, 0])
    cfg = make_cfg(tmp_path, *chars_cfg(tmp_path, tmp_path / "x.txt"), "+data.classes=[1,2]")
    with pytest.raises(ConfigError, match=r"unknown key 'data.classes'"):
        build.build_datamodule(cfg)


def test_url_is_downloaded_once_into_the_cache(tmp_path):
    """A Gutenberg-style file through a file:// URL: the licence around the book is dropped."""
    book = "Chapter 1\nHappy families are all alike.\n" * 20
    raw = "\ufeffThe Project Gutenberg eBook\r\n*** START OF THE PROJECT GUTENBERG EBOOK ***\r\n"
    raw += book.replace("\n", "\r\n") + "*** END OF THE PROJECT GUTENBERG EBOOK ***\r\nlicence\r\n"
    source = write(tmp_path, "pg1399.txt", raw)
    cache = tmp_path / "cache"
    data = Chars(url=source.as_uri(), cache_dir=str(cache), seq_len=10)
    assert data.text() == book
    (cached,) = cache.iterdir()  # the file itself, no temporary .part left behind
    assert cached.name.endswith("-pg1399.txt") and cached.read_bytes() == source.read_bytes()
    source.unlink()  # now only the cache has it
    assert Chars(url=source.as_uri(), cache_dir=str(cache), seq_len=10).text() == book

    with pytest.raises(ConfigError) as failed:
        Chars(url=(tmp_path / "nowhere.txt").as_uri(), cache_dir=str(cache)).setup()
    message = str(failed.value)
    assert message.startswith("data.url=file://") and "could not be downloaded" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert [p.name for p in cache.iterdir()] == [cached.name]
    with pytest.raises(ConfigError, match="set only one"):
        Chars(path=str(source), url=source.as_uri())


def test_models_that_cannot_predict_every_next_token_are_refused(tmp_path):
    path = write(tmp_path, "prose.txt", PROSE * 3)
    base = chars_cfg(tmp_path, path, "data.seq_len=10")
    cfg = make_cfg(tmp_path, *base, "model.bidirectional=true")
    datamodule = build.build_datamodule(cfg)
    with pytest.raises(ConfigError, match="bidirectional=true cannot predict the next token"):
        build.build_net(cfg, datamodule.spec, [])
    cfg = make_cfg(tmp_path, "data=chars", f"data.path={path}", "data.seq_len=10", "model=mlp")
    with pytest.raises(ConfigError, match="language modelling"):
        build.build_net(cfg, datamodule.spec, [])
    with pytest.raises(ConfigError, match="gives one output per example"):  # built by hand
        LanguageModelTask(
            net=torch.nn.Linear(10, 5), loss_fn=torch.nn.CrossEntropyLoss(), optimizer=None
        )


def test_val_ppl_is_exp_of_the_mean_token_nll_over_the_split(tmp_path):
    """Logged val/ppl against a hand computation over all validation windows at once, while
    training evaluated the split in 13 batches of at most 4 windows."""
    path = write(tmp_path, "prose.txt", PROSE * 30)  # 10,590 characters
    overrides = chars_cfg(tmp_path, path, "data.seq_len=10", "data.eval_batch_size=4")
    net, trainer = fit_net(tmp_path, *overrides, epochs=1)
    x, y = trainer.datamodule.splits["val"]
    assert len(x) == 51  # 530 characters of validation text in windows of 10
    net.eval()
    with torch.no_grad():
        logits = net(x)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        correct = (logits.argmax(-1) == y).float().mean()
    logged = trainer.callback_metrics
    assert float(logged["val/ppl"]) == pytest.approx(math.exp(float(nll)), rel=1e-5)
    assert float(logged["val/loss"]) == pytest.approx(float(nll), rel=1e-5)
    assert float(logged["val/acc"]) == pytest.approx(float(correct), abs=1e-6)
    assert float(logged["train/ppl"]) == pytest.approx(math.exp(float(logged["train/loss"])))


@pytest.fixture(scope="module")
def repetitive(tmp_path_factory):
    """An LSTM trained for 8 epochs on one sentence repeated, with TextSamples on."""
    tmp_path = tmp_path_factory.mktemp("repetitive")
    path = write(tmp_path, "cat.txt", PATTERN * 200)
    history = History("val/loss")
    samples = TextSamples(temperatures=[0.5, 1.0], length=30, prime="the ")
    overrides = chars_cfg(
        tmp_path, path, "data.seq_len=25", "data.batch_size=16", "optimizer.lr=0.01"
    )
    net, trainer = fit_net(tmp_path, *overrides, callbacks=[history, samples], epochs=8)
    return net, trainer, history, samples, tmp_path


def test_perplexity_falls_and_cold_samples_repeat_the_sentence(repetitive):
    net, trainer, history, _, _ = repetitive
    ppl = [row["val/ppl"] for row in history.epochs]
    assert len(ppl) == 8
    assert ppl[0] > 3.0 and ppl[-1] < 1.2  # near 1: the next character is certain
    assert all(b < a for a, b in zip(ppl, ppl[3:], strict=False))
    vocab = trainer.datamodule.spec.vocab
    generator = torch.Generator().manual_seed(0)
    drawn = sample(net, vocab, "the cat ", 2 * len(PATTERN), 0.2, generator)
    assert drawn == (PATTERN * 3)[len("the cat ") :][: 2 * len(PATTERN)]


def test_hotter_samples_are_more_diverse(repetitive):
    """Same weights, same seed: at temperature 3 the sentence breaks into new character pairs."""
    net, trainer, *_ = repetitive
    vocab = trainer.datamodule.spec.vocab
    known = {(PATTERN * 2)[i : i + 2] for i in range(len(PATTERN))}

    def novel_pairs(temperature: float) -> int:
        text = sample(net, vocab, "the ", 300, temperature, torch.Generator().manual_seed(1))
        return len({text[i : i + 2] for i in range(len(text) - 1)} - known)

    cold, hot = novel_pairs(0.3), novel_pairs(3.0)
    assert cold == 0 and hot >= 10
    with pytest.raises(ConfigError, match="temperature must be a number > 0"):
        sample(net, vocab, "the ", 5, -1.0)
    with pytest.raises(
        ConfigError,
        match=r"prime='Zebra' has characters that never occur in the training text \('Zbr'\)",
    ):
        sample(net, vocab, "Zebra", 5, 1.0)


def test_text_samples_writes_every_epoch_at_every_temperature(repetitive):
    *_, samples, tmp_path = repetitive
    assert [(s["epoch"], s["temperature"]) for s in samples.samples] == [
        (e, t) for e in range(8) for t in (0.5, 1.0)
    ]
    assert all(s["text"].startswith("the ") and len(s["text"]) == 34 for s in samples.samples)
    written = (tmp_path / "samples.txt").read_text()
    assert written.count("--- epoch ") == 16 and "--- epoch 7, temperature 0.5 ---" in written
    assert samples.samples[-1]["text"] in written
    # later epochs have learned the sentence: the last cold sample is part of it
    assert samples.samples[-2]["text"] in PATTERN * 3


def test_text_samples_refuses_data_that_is_not_a_language_model(tmp_path):
    with pytest.raises(
        ConfigError, match="text_samples draws text from a language model.*'classification'"
    ):
        fit_net(tmp_path, callbacks=[TextSamples()], epochs=1)
