"""Text classification: data=text_topics (fortunes topics, IMDB layout), model=textcnn and tdnn,
and recurrent models on padded token batches."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import make_cfg
from torch import nn

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.data.text import words
from lightdl.data.text_topics import TextTopics
from lightdl.errors import ConfigError
from lightdl.models.recurrent import Recurrent
from lightdl.models.textcnn import TDNN, TextCNN

TOKENS = DataSpec(input_shape=(12,), num_classes=3, kind="tokens", vocab_size=50, seq_len=12)


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on two contended ones; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def imdb_tree(root, reviews):
    """An aclImdb-shaped folder: reviews maps "train/pos" etc. to a list of texts."""
    for folder, texts in reviews.items():
        (root / folder).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / folder / f"{i}_7.txt").write_text(text)
    return root


TINY_IMDB = {
    "train/pos": ["a great film<br />great acting", "great fun", "loved it, great", "great"],
    "train/neg": ["a bad film", "bad acting, bad plot", "awful and bad", "bad"],
    "test/pos": ["great zebra film"],
    "test/neg": ["bad zebra plot and more words than fit"],
}


def test_vocab_is_built_on_the_training_split_only(tmp_path):
    data = TextTopics(source="imdb", path=str(imdb_tree(tmp_path, TINY_IMDB)), val_fraction=0.25)
    data.setup()
    train_words = {w for x in data.splits["train"][0] for w in data.vocab.decode(x, " ").split()}
    assert data.vocab.itos[:2] == ["<pad>", "<unk>"] and "<unk>" not in train_words
    assert "zebra" not in data.vocab.stoi  # only in the test split
    test_x, test_y = data.splits["test"]
    assert data.vocab.decode(test_x[test_y == 1][0][:3], " ") == "great <unk> film"
    # the validation split's words are not in the vocabulary unless training also has them
    val_only = {w for t, _ in data._imdb()["val"] for w in words(t)} - {
        w for t, _ in data._imdb()["train"] for w in words(t)
    }
    assert val_only and not val_only & set(data.vocab.stoi)
    assert "br" not in data.vocab.stoi  # HTML line breaks are spaces, not words


def test_fortunes_topics_are_balanced_and_unseen_words_are_unk():
    data = TextTopics(max_per_topic=60)
    data.setup()
    spec = data.spec
    assert spec.kind == "tokens" and spec.task == "classification"
    assert spec.num_classes == len(data.class_names) == 5 and spec.input_shape == (64,)
    assert spec.vocab_size == len(data.vocab) and spec.vocab[:2] == ("<pad>", "<unk>")
    for split in ("train", "val", "test"):
        counts = data.splits[split][1].bincount(minlength=5)
        assert counts.max() - counts.min() <= 1, (split, counts)  # stratified, balanced
    assert not (data.splits["train"][0] == 1).any()  # min_count=1: every training word is known
    assert (data.splits["test"][0] == 1).any()  # test words never seen in training are <unk>


def test_padding_and_truncation(tmp_path):
    data = TextTopics(source="imdb", path=str(imdb_tree(tmp_path, TINY_IMDB)), max_length=5)
    data.setup()
    x = data.splits["test"][0]
    decode = data.vocab.decode
    assert x.shape == (2, 5)
    long = [row for row in x if (row != 0).all()][0]  # "bad zebra plot and more words ..."
    first5 = words(TINY_IMDB["test/neg"][0])[:5]  # bad zebra plot and more
    assert decode(long, " ") == " ".join(w if w in data.vocab.stoi else "<unk>" for w in first5)
    assert decode(long[:3], " ") == "bad <unk> plot"  # truncated to its first 5 words
    short = [row for row in x if (row == 0).any()][0]  # "great zebra film" + 2 padding ids
    assert short.tolist()[3:] == [0, 0] and decode(short[:3], " ") == "great <unk> film"


def test_missing_imdb_directory_is_one_sentence(tmp_path):
    data = TextTopics(source="imdb", path=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as info:
        data.setup()
    message = str(info.value)
    assert "data.path=" in message and "aclImdb" in message and "\n" not in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_bad_options_are_refused_with_one_sentence():
    with pytest.raises(ConfigError, match="data.topics"):
        TextTopics(topics=["computers", "no-such-file"]).setup()
    with pytest.raises(ConfigError, match="data.classes"):
        TextTopics(classes=[0, 1])
    with pytest.raises(ConfigError, match="data.source"):
        TextTopics(source="twitter")
    few = TextTopics(train_per_class=7)
    few.setup()
    assert few.splits["train"][1].bincount().tolist() == [7] * 5
    assert len(few.vocab) < len(TextTopics(max_per_topic=150).spec.vocab)  # vocab from those 35


@pytest.mark.parametrize(
    "model",
    [
        # TextCNN 32 filters per width, 5 epochs: test acc 0.58 on the default data (chance 0.2)
        ["model=textcnn", "model.channels=32", "model.embedding.dim=32"],
        # GRU 32 units, mean over time, 5 epochs: test acc 0.46 (chance 0.2)
        ["model=gru", "model.hidden_size=32", "model.output=mean", "model.embedding.dim=32"],
    ],
    ids=["textcnn", "gru"],
)
def test_text_models_beat_chance(tmp_path, one_thread, model):
    cfg = make_cfg(
        tmp_path,
        "data=text_topics",
        *model,
        "optimizer.lr=0.003",
        "trainer.max_epochs=5",
        "callbacks=[]",
        "train_probe=0",
    )
    data = build.build_datamodule(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, data.spec, [])
    task = build.build_task(cfg, net, data, [])
    build.build_trainer(cfg, [], [], [], tmp_path).fit(task, datamodule=data)
    net.eval()
    x, y = data.splits["test"]
    with torch.no_grad():
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    chance = 1 / data.spec.num_classes
    print(f"{model[0]}: test acc {accuracy:.3f}, chance {chance:.2f}")
    assert accuracy > chance + 0.15, accuracy  # 110 test texts: chance gives about 0.2 +- 0.04


def test_textcnn_output_does_not_depend_on_padding():
    torch.manual_seed(0)
    net = TextCNN(TOKENS, embedding={"dim": 8}, kernel_sizes=[2, 5], channels=6).eval()
    # texts of 1 (shorter than every filter), 4 and 12 tokens, right-padded with id 0
    x = torch.zeros(3, 12, dtype=torch.int64)
    for row, n in enumerate((1, 4, 12)):
        x[row, :n] = torch.randint(2, 50, (n,))
    longer = torch.cat([x, torch.zeros(3, 30, dtype=torch.int64)], dim=1)
    assert torch.allclose(net(x), net(longer), atol=1e-6)
    alone = net(x[1:2, :4])  # the 4-token text with no padding at all
    assert torch.allclose(alone, net(x)[1:2], atol=1e-6)
    # a learned pad row would leak into windows over the padding if it were not zeroed/masked
    with torch.no_grad():
        net.embed.weight[0] = 5.0
    assert torch.allclose(net(x), net(longer), atol=1e-6)


def test_textcnn_refuses_non_token_data():
    spec = DataSpec(input_shape=(1, 8, 8), num_classes=10, kind="image")
    with pytest.raises(ConfigError, match="token ids.*'image'"):
        TextCNN(spec)


@pytest.mark.parametrize(
    ("kernel", "dilations", "gaps"), [(3, [1, 2, 4], False), (4, [2], True), (2, [1, 3], True)]
)
def test_tdnn_output_step_depends_on_exactly_its_receptive_field(kernel, dilations, gaps):
    spec = DataSpec(input_shape=(40, 3), num_classes=2, kind="sequence")
    torch.manual_seed(0)
    net = TDNN(spec, kernel_size=kernel, dilations=dilations, channels=8, activation=nn.Tanh)
    field = 1 + sum((kernel - 1) * d for d in dilations)
    assert net.receptive_field == field
    x = torch.randn(1, 40, 3, requires_grad=True)
    t = 30
    net.features(x)[0, :, t].sum().backward()
    touched = (x.grad[0].abs().sum(dim=1) > 0).nonzero().flatten().tolist()
    # the window: `field` steps ending at t, the earliest and the latest of them read
    assert touched[0] == t - field + 1 and touched[-1] == t
    # every step in it is read unless a dilation skips over steps the layers below never filled
    # (kernel 2, dilations [1, 3]: offsets {0, 1} + {0, 3} = {0, 1, 3, 4}, step t - 2 is skipped)
    offsets = {0}
    for d in dilations:
        offsets = {o + d * j for o in offsets for j in range(kernel)}
    assert touched == sorted(t - o for o in offsets)
    assert (len(touched) < field) == gaps


def test_tdnn_reads_tokens_images_and_sequences():
    torch.manual_seed(0)
    net = TDNN(TOKENS, embedding={"dim": 8}, channels=6, pool="mean").eval()
    x = torch.zeros(2, 12, dtype=torch.int64)
    x[0, :3], x[1, :12] = torch.tensor([5, 6, 7]), torch.randint(2, 50, (12,))
    more = torch.cat([x, torch.zeros(2, 9, dtype=torch.int64)], dim=1)
    assert torch.allclose(net(x), net(more), atol=1e-6)  # padding is outside the pooled steps
    image = DataSpec(input_shape=(1, 8, 8), num_classes=10, kind="image")
    assert TDNN(image, channels=4)(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("output", ["last", "mean", "max", "attention"])
def test_recurrent_gives_the_same_output_alone_as_in_a_padded_batch(output, bidirectional):
    torch.manual_seed(0)
    net = Recurrent(
        TOKENS,
        cell="lstm",
        hidden_size=8,
        bidirectional=bidirectional,
        output=output,
        embedding={"dim": 6},
    ).eval()
    sizes = (3, 12, 1, 7)
    batch = torch.zeros(len(sizes), 12, dtype=torch.int64)
    for row, n in enumerate(sizes):
        batch[row, :n] = torch.randint(2, 50, (n,))
    together = net(batch)
    for row, n in enumerate(sizes):
        alone = net(batch[row : row + 1, :n])
        assert torch.allclose(alone, together[row : row + 1], atol=1e-5), (row, n)
    unpacked = Recurrent(TOKENS, hidden_size=8, output=output, embedding={"dim": 6}, packed=False)
    unpacked.load_state_dict(
        Recurrent(TOKENS, hidden_size=8, output=output, embedding={"dim": 6}).state_dict()
    )
    # without packing the padding steps do enter the state, so a short text's output changes
    short = batch[:1]
    assert not torch.allclose(unpacked.eval()(short), unpacked(short[:, :3]), atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["regularizer=[input_noise]"], "regularizer=input_noise changes real-valued inputs"),
        (["augment=[shift]"], "augment=shift needs image data"),
        (["+model.embedding.size=8"], "model.embedding has no key size; valid keys: dim, init"),
    ],
)
def test_token_data_refuses_real_valued_transforms_and_unknown_embedding_keys(
    tmp_path, overrides, says
):
    from conftest import make_cfg

    from lightdl import build

    cfg = make_cfg(tmp_path, "data=text_topics", "model=gru", *overrides)
    data = build.build_datamodule(cfg)
    regularizers = build.build_regularizers(cfg)
    with pytest.raises(ConfigError) as info:
        net = build.build_net(cfg, data.spec, regularizers)
        build.build_task(cfg, net, data, regularizers)
    assert says in str(info.value)
