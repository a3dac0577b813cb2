"""Skip-gram word2vec: subsampling, the negative table, windows, the loss, what training learns,
vector queries, and recurrent models started from the saved vectors."""

from __future__ import annotations

import functools
import math
import random
from collections import Counter

import pytest
import torch
from conftest import fit_net
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.data.words import Words, skipgram_pairs, subsample
from lightdl.errors import ConfigError
from lightdl.models.recurrent import Recurrent
from lightdl.models.skipgram import SkipGram, analogy, nearest
from lightdl.regularizers import L2
from lightdl.tasks.skipgram import SkipGramTask, negative_sampling_loss

ADAM = functools.partial(torch.optim.Adam, lr=0.01)


def _zipf_file(tmp_path, docs=1000, length=100, seed=0):
    """A text where 'the' is half of all words and the rest follow a Zipf-like law."""
    rng = random.Random(seed)
    others = [f"w{i}" for i in range(200)]
    weights = [1 / (i + 1) for i in range(200)]
    paragraphs = []
    for _ in range(docs):
        words = [
            "the" if rng.random() < 0.5 else rng.choices(others, weights)[0] for _ in range(length)
        ]
        paragraphs.append(" ".join(words))
    path = tmp_path / "zipf.txt"
    path.write_text("\n\n".join(paragraphs))
    return path


@pytest.fixture(scope="module")
def zipf(tmp_path_factory):
    path = _zipf_file(tmp_path_factory.mktemp("zipf"))
    data = Words(path=str(path), min_count=1, subsample_t=1e-2, val_fraction=0, test_fraction=0)
    data.setup()
    return path, data


def _spec(vocab):
    return DataSpec(
        input_shape=(),
        num_classes=len(vocab),
        kind="tokens",
        vocab_size=len(vocab),
        task="skipgram",
        vocab=tuple(vocab),
    )


def _task(net, probs=None, negatives=5, **kwargs):
    return SkipGramTask(
        net=net,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=ADAM,
        negative_probs=probs,
        negatives=negatives,
        **kwargs,
    )


def test_keep_probability_is_the_papers_formula_and_the_kept_fraction_follows_it(zipf):
    path, data = zipf
    counts = Counter(path.read_text().split())
    total = sum(counts.values())
    for word, count in counts.items():
        expected = min(1.0, math.sqrt(1e-2 / (count / total)))
        assert data.keep_probability[data.vocab.stoi[word]].item() == pytest.approx(expected)
    assert data.keep_probability[0] == 0  # <pad> never occurs
    the = data.vocab.stoi["the"]
    assert data.keep_probability[the].item() == pytest.approx(math.sqrt(0.02), abs=0.003)
    ids, _ = data.corpus["train"]
    kept = subsample(ids, data.keep_probability, torch.Generator().manual_seed(1))
    fraction = kept[ids == the].float().mean().item()  # about 50,000 occurrences
    assert fraction == pytest.approx(data.keep_probability[the].item(), abs=0.01)
    rare = data.keep_probability == 1.0
    assert kept[rare[ids]].all()  # words below the threshold frequency are all kept


def test_negative_table_is_count_to_the_three_quarters_and_draws_follow_it(zipf):
    _, data = zipf
    weights = data.counts.double() ** 0.75
    assert torch.allclose(data.negative_probs.double(), weights / weights.sum(), atol=1e-7)
    task = _task(SkipGram(data.spec, dim=4), data.negative_probs)
    torch.manual_seed(0)
    drawn = task.draw_negatives(40_000)  # 200,000 draws
    assert drawn.shape == (40_000, 5)
    frequency = torch.bincount(drawn.flatten(), minlength=len(data.counts)).double() / drawn.numel()
    assert (frequency - data.negative_probs.double()).abs().max() < 0.005
    assert frequency[0] == 0  # never <pad>


def test_pairs_lie_within_the_window_and_the_document():
    ids = torch.arange(20_000)
    docs = ids // 50  # documents of 50 words
    centre, context = skipgram_pairs(ids, docs, 4, shrink=False)
    distance = (context - centre).abs()
    assert distance.min() == 1 and distance.max() == 4
    assert (docs[centre] == docs[context]).all()
    per_doc = sum(2 * (50 - d) for d in range(1, 5))  # every pair, both directions
    assert len(centre) == per_doc * 400
    # word2vec's reduced window: distance d is used by the (W - d + 1) / W of centres that reach it
    centre, context = skipgram_pairs(
        ids, docs, 4, shrink=True, generator=torch.Generator().manual_seed(0)
    )
    distance = (context - centre).abs()
    assert distance.max() == 4 and (docs[centre] == docs[context]).all()
    by_distance = torch.bincount(distance, minlength=5)[1:].double()
    ratios = (by_distance / by_distance[0]).tolist()
    assert ratios == pytest.approx([1.0, 0.75, 0.5, 0.25], abs=0.03)


def test_subsampled_pairs_reach_past_discarded_words():
    ids = torch.arange(1000)
    keep = torch.zeros(1000, dtype=torch.float64)
    keep[::3] = 1.0  # keep every third word
    centre, context = skipgram_pairs(ids, torch.zeros(1000, dtype=torch.int64), 1, keep, False)
    assert set((context - centre).abs().tolist()) == {3}  # neighbours in the kept stream


def test_loss_equals_the_formula_on_a_hand_computed_example():
    net = SkipGram(_spec(["<pad>", "c", "o", "k1", "k2"]), dim=2)
    with torch.no_grad():
        net.input.weight.zero_()
        net.input.weight[1] = torch.tensor([1.0, 0.0])  # v_c
        net.output.weight[2] = torch.tensor([2.0, 0.0])  # u_o: u_o.v_c = 2
        net.output.weight[3] = torch.tensor([0.0, 1.0])  # u_k1.v_c = 0
        net.output.weight[4] = torch.tensor([-1.0, 0.0])  # u_k2.v_c = -1
    task = _task(net, negatives=2)
    loss = task.pair_loss(torch.tensor([1]), torch.tensor([2]), torch.tensor([[3, 4]]))
    # -log s(2) - log s(-0) - log s(1) = log(1+e^-2) + log 2 + log(1+e^-1)
    assert loss.item() == pytest.approx(0.126928 + 0.693147 + 0.313262, abs=1e-5)
    # a batch is the mean over its pairs; a zero centre vector scores 0 with every word
    pair_two = negative_sampling_loss(torch.tensor([0.0]), torch.tensor([[0.0, 0.0]]))
    assert pair_two.item() == pytest.approx(3 * math.log(2))
    both = task.pair_loss(
        torch.tensor([1, 0]), torch.tensor([2, 0]), torch.tensor([[3, 4], [1, 2]])
    )
    assert both.item() == pytest.approx((loss.item() + 0.0 + 3 * math.log(2)) / 2, abs=1e-5)


def _topics_file(tmp_path):
    """Two topics whose words never share a document: a clear co-occurrence structure."""
    rng = random.Random(0)
    topics = [[f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]]
    docs = [" ".join(rng.choices(topics[n % 2], k=12)) for n in range(300)]
    path = tmp_path / "topics.txt"
    path.write_text("\n\n".join(docs))
    return path


def test_training_puts_same_topic_words_nearest_and_writes_the_vectors(tmp_path, capsys):
    path = _topics_file(tmp_path)
    net, trainer = fit_net(
        tmp_path,
        "data=words",
        "model=skipgram",
        f"data.path={path}",
        "data.min_count=1",
        "data.subsample_t=null",
        "data.window=3",
        "data.batch_size=256",
        "data.query_words=[a0,b0,zzz]",
        "model.dim=16",
        "optimizer.lr=0.02",
        epochs=4,
    )
    assert trainer.callback_metrics["train/loss"] < 3.0  # 6 log 2 = 4.16 at the start
    for word in [f"{t}{i}" for t in "ab" for i in range(8)]:
        ranked = net.nearest(word, k=15)  # every other word (<pad> aside), best first
        assert all(w[0] == word[0] for w, _ in ranked[:7]), (word, ranked)
        assert ranked[6][1] > 0.9 and ranked[7][1] < 0.5  # measured: >= 0.99 and <= 0.14
    report = (tmp_path / "neighbours.md").read_text()
    assert "| a0 | a" in report and "| zzz | (not in the vocabulary) |" in report
    assert "| a0 |" in capsys.readouterr().out
    tokens, vectors = torch.load(tmp_path / "vectors.pt", weights_only=True).values()
    assert list(tokens) == list(net.vocab) and torch.equal(vectors, net.vectors.detach())


def _hand_made():
    vocab = ["<pad>", "king", "queen", "man", "woman", "apple"]
    vectors = torch.tensor(  # dimensions: royal, male, fruit
        [[0, 0, 0], [1, 1, 0], [1, -1, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], dtype=torch.float32
    )
    return vocab, vectors


def test_nearest_and_analogy_on_hand_made_vectors():
    vocab, vectors = _hand_made()
    found = nearest(vectors, vocab, "king", k=5)  # every other word, best first
    assert found[0] == ("man", pytest.approx(1 / math.sqrt(2)))
    assert found[-1] == ("woman", pytest.approx(-1 / math.sqrt(2)))
    assert "king" not in [w for w, _ in found]
    assert nearest(vectors, vocab, "apple", k=1)[0][1] == pytest.approx(0.0)
    # man : king :: woman : queen  (king - man + woman)
    assert analogy(vectors, vocab, "man", "king", "woman")[0][0] == "queen"
    assert analogy(vectors, vocab, "king", "queen", "man")[0][0] == "woman"
    with pytest.raises(ConfigError, match="'prince' is not in the vocabulary"):
        nearest(vectors, vocab, "prince")
    net = SkipGram(_spec(vocab), dim=3)
    with torch.no_grad():
        net.input.weight.copy_(vectors)
    assert net.analogy("man", "king", "woman")[0][0] == "queen"
    assert "<pad>" not in [w for w, _ in net.nearest("apple", k=5)]


def test_forward_gives_the_input_vectors():
    net = SkipGram(_spec(["<pad>", "x", "y"]), dim=5)
    assert torch.equal(net(torch.tensor([2, 1])), net.input.weight[[2, 1]])


def test_recurrent_model_starts_from_saved_vectors_and_freeze_keeps_them(tmp_path):
    vocab, vectors = _hand_made()
    source = SkipGram(_spec(vocab), dim=3)
    with torch.no_grad():
        source.input.weight.copy_(vectors)
    path = tmp_path / "vectors.pt"
    source.save(path)
    target_vocab = ("<pad>", "<unk>", "queen", "pear", "king")  # overlaps in queen and king
    spec = DataSpec(
        input_shape=(4,), num_classes=2, kind="tokens", vocab_size=5, vocab=target_vocab
    )
    net = Recurrent(spec, hidden_size=8, embedding={"dim": 3, "init": str(path), "freeze": True})
    table = net.embed.weight
    assert net.embed.found == 2
    assert torch.equal(table[2], vectors[2]) and torch.equal(table[4], vectors[1])
    before = table.detach().clone()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1.0)
    x = torch.tensor([[2, 3, 4, 1], [4, 4, 2, 0]])
    nn.functional.cross_entropy(net(x), torch.tensor([0, 1])).backward()
    optimizer.step()
    assert torch.equal(net.embed.weight, before)
    assert not net.embed.weight.requires_grad
    with pytest.raises(ConfigError, match="3-dimensional vectors but model.embedding.dim=4"):
        Recurrent(spec, hidden_size=8, embedding={"dim": 4, "init": str(path)})


def test_task_refuses_a_loss_or_penalty_it_cannot_use():
    net = SkipGram(_spec(["<pad>", "x", "y"]), dim=2)
    with pytest.raises(ConfigError, match="own negative-sampling loss"):
        SkipGramTask(net=net, loss_fn=nn.MSELoss(), optimizer=ADAM)
    with pytest.raises(ConfigError, match="L2 acts on layer weights"):
        SkipGramTask(net=net, loss_fn=nn.CrossEntropyLoss(), optimizer=ADAM, regularizers=[L2()])


def test_each_epoch_draws_a_fresh_subsample_of_the_same_size(zipf):
    _, data = zipf
    epoch = [0]
    data.trainer = None
    loader = data.train_dataloader()
    loader.epoch_fn = lambda: epoch[0]
    first = torch.cat([c for c, _ in loader])
    epoch[0] = 1
    second = torch.cat([c for c, _ in loader])
    assert len(first) == len(second) == len(data.splits["train"][0])
    assert not torch.equal(first.sort().values, second.sort().values)  # a different draw
