"""Convolutional, classic and deep-highway models: output sizes, parameter counts, pools, shortcuts."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_cfg
from torch import nn

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.cnn import CNN, conv_output_size
from lightdl.models.lenet import LeNet
from lightdl.models.resnet import BasicBlock, ResNet
from lightdl.models.summary import summarize

SMALL = {  # default architectures, narrowed so the file stays fast on 2 CPU cores
    "cnn": ["model.blocks=[{filters:8,kernel:3},{filters:16,kernel:3}]", "model.head=[32]"],
    "lenet": [],
    "vgg": ["model.stages=[[8,8],[16]]", "model.head=[32]"],
    "resnet": ["model.stages=[8,16]", "model.depth=1"],
    "highway": ["model.layers=4", "model.width=32"],
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small nets on a shared 2-core machine: a second intra-op thread only waits for the first."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def image(c: int, h: int, w: int | None = None) -> DataSpec:
    return DataSpec(input_shape=(c, h, w or h), num_classes=10, kind="image")


def one_block(w: int, f: int, s: int, padding: str, spec: DataSpec | None = None) -> CNN:
    block = {"filters": 4, "kernel": f, "stride": s, "padding": padding, "pool": "none"}
    return CNN(spec or image(3, w), blocks=[block], head=[])


@pytest.mark.parametrize(("w", "f", "s"), [(8, 3, 1), (8, 3, 2), (7, 3, 2), (28, 5, 1), (9, 4, 3)])
def test_same_and_valid_sizes_follow_the_formulas(w, f, s):
    for padding, expected in [("same", math.ceil(w / s)), ("valid", (w - f) // s + 1)]:
        assert conv_output_size(w, f, s, padding) == expected
        out = one_block(w, f, s, padding).features[:-1](torch.zeros(2, 3, w, w))
        assert out.shape == (2, 4, expected, expected)
        vec = one_block(w, f, s, padding, DataSpec((w,), 2, "vector"))  # Conv1d over (N, 1, D)
        assert vec.features[:-1](torch.zeros(2, w)).shape == (2, 4, expected)
    assert conv_output_size(w, f, s, 1) == (w - f + 2) // s + 1  # explicit zero-padding P


def test_valid_stack_that_runs_out_of_pixels_is_a_config_error():
    blocks = [{"filters": 4, "kernel": 3, "padding": "valid"}] * 3  # 8 -> 6 -> 3 -> 1 -> (pool)
    with pytest.raises(ConfigError, match=r"blocks\[2\].*1x1"):
        CNN(image(1, 8), blocks=blocks)


def test_conv_parameter_count_is_k_f2_d_plus_k():
    k, f, d = 4, 5, 3
    conv = one_block(12, f, 1, "valid").features[1]
    assert isinstance(conv, nn.Conv2d)
    assert sum(p.numel() for p in conv.parameters()) == k * f * f * d + k == 304


def test_pools_on_a_hand_example():
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    expected = {"max": 4.0, "avg": 1.5, "l2": math.sqrt(1 + 4 + 9 + 16)}
    for kind, value in expected.items():
        pool = CNN(image(1, 2), blocks=[{"filters": 1, "kernel": 1, "pool": kind}], head=[])
        assert pool.features[3](x).item() == pytest.approx(value)
        assert torch.nn.functional.lp_pool2d(x, 2, 2).item() == pytest.approx(expected["l2"])


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_global_pool_reduces_each_channel_to_one_number(kind):
    net = CNN(image(1, 8), blocks=[{"filters": 6, "kernel": 3, "pool": "none"}], global_pool=kind)
    assert net.features(torch.randn(5, 1, 8, 8)).shape == (5, 6)
    assert net.classifier[0].in_features == 6
    assert "(None, 6, 8, 8)" in summarize(net, torch.zeros(2, 1, 8, 8))  # per-layer shapes


def test_lenet_parameter_count_is_the_classic_formula():
    def count(channels):
        convs = 6 * (25 * channels + 1) + 16 * (25 * 6 + 1)
        dense = 400 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
        return convs + dense

    for c, side in [(1, 28), (1, 32), (3, 32)]:
        net = LeNet(image(c, side))
        assert net.out_shape == (16, 5, 5)
        assert sum(p.numel() for p in net.parameters()) == count(c)
    assert count(1) == 61_706


def test_resnet_shortcut_is_identity_when_shapes_match_else_projection():
    net = ResNet(image(1, 8), stages=[8, 16], depth=2)
    same, down, after = net.blocks[0], net.blocks[2], net.blocks[3]
    assert isinstance(same.shortcut, nn.Identity) and isinstance(after.shortcut, nn.Identity)
    assert isinstance(down.shortcut[0], nn.Conv2d) and down.shortcut[0].kernel_size == (1, 1)
    assert down.shortcut[0].stride == (2, 2)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_zeroed_residual_branch_makes_a_matching_block_the_identity():
    block = BasicBlock(8, 8, (6, 6), 1, nn.ReLU, bn=True).eval()
    with torch.no_grad():
        block.branch[-1].weight.zero_()  # last batchnorm's scale and shift: the branch outputs 0
        block.branch[-1].bias.zero_()
    x = torch.rand(4, 8, 6, 6)  # a block's input comes out of a ReLU: non-negative
    assert torch.equal(block(x), x)


def test_resnet_refuses_maxout(tmp_path):
    cfg = make_cfg(tmp_path, "model=resnet", "activation=maxout")
    with pytest.raises(ConfigError, match="maxout"):
        build.build_net(cfg, image(1, 8), [])


def test_highway_gate_starts_closed_so_a_layer_nearly_copies_its_input(tmp_path):
    cfg = make_cfg(tmp_path, "model=highway", "init=he_normal")  # init sets Linear biases to 0
    net = build.build_net(cfg, image(1, 8), [])
    layer = net[3]
    assert torch.all(layer.gate_bias == -2.0)
    with torch.no_grad():
        layer.gate.weight.zero_()  # T = sigmoid(-2) exactly
        x = torch.randn(16, 64)
        t = torch.sigmoid(torch.tensor(-2.0))
        assert torch.allclose(layer(x), t * layer.act(layer.transform(x)) + (1 - t) * x)
        assert (layer(x) - x).norm() < 0.5 * x.norm()


def _train(tmp_path, *overrides: str, steps: int = 30, lr: float = 0.01) -> tuple[float, float]:
    cfg = make_cfg(tmp_path, *overrides)
    datamodule = build.build_datamodule(cfg)
    torch.manual_seed(0)
    net = build.build_net(cfg, datamodule.spec, build.build_regularizers(cfg))
    x, y = datamodule.splits["train"]
    x, y = x[:128], y[:128]
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    first = loss_fn(net(x), y).item()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
    return first, loss.item()


def test_deep_highway_trains_where_a_plain_deep_mlp_stalls(tmp_path):
    deep = "[" + ",".join(["32"] * 20) + "]"
    torch.set_flush_denormal(True)  # vanishing gradients are subnormal floats: very slow on CPU
    try:
        _compare_deep_nets(tmp_path, deep)
    finally:
        torch.set_flush_denormal(False)


def _compare_deep_nets(tmp_path, deep: str) -> None:
    first, last = _train(
        tmp_path, "model=highway", "model.layers=20", "model.width=32", "activation=sigmoid"
    )
    assert last < 0.5 * first
    first, last = _train(tmp_path, "model=mlp", f"model.hidden={deep}", "activation=sigmoid")
    assert last > 0.95 * first  # vanishing gradients through 20 sigmoid layers: stuck near ln(10)


@pytest.mark.parametrize("model", list(SMALL))
def test_model_composes_and_learns_on_digits(tmp_path, model):
    first, last = _train(tmp_path, f"model={model}", *SMALL[model], steps=15)
    assert last < 0.7 * first


def test_cnn_builds_with_batchnorm_dropout_and_maxout(tmp_path):
    cfg = make_cfg(tmp_path, "model=cnn", "regularizer=[batchnorm,dropout]", "activation=maxout")
    net = build.build_net(cfg, image(1, 8), build.build_regularizers(cfg))
    kinds = [type(m).__name__ for m in net.modules()]
    assert {"BatchNorm2d", "Dropout", "Maxout"} <= set(kinds)
    assert net.features[1].out_channels == 64  # 32 filters, 2 maxout pieces each
    assert net(torch.randn(4, 1, 8, 8)).shape == (4, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_vgg_builds_for_28x28_and_32x32(shape):
    from lightdl.models.vgg import VGG

    net = VGG(image(*shape), stages=[[8, 8], [16, 16], [32]])
    side = shape[1] // 8  # three 2x2 max-pools
    assert net.out_shape == (32, side, side)
    assert net(torch.zeros(2, *shape)).shape == (2, 10)


def test_resnet_trains_where_a_plain_cnn_of_the_same_depth_stalls(tmp_path):
    """21 convs, no batch norm, PyTorch's default init, 40 Adam steps at 1e-3 on 128 digits.

    The shortcuts carry the signal through; the plain stack's output barely depends on its input,
    so its loss stays at ln(10). (With batch norm both train: the effect is that of depth alone.)
    """
    resnet = ("model=resnet", "model.stages=[16]", "model.depth=10", "model.batchnorm=false")
    first, last = _train(tmp_path, *resnet, steps=40, lr=1e-3)
    assert last < 0.7 * first  # measured 2.30 -> 1.35
    plain = "[" + ",".join(["{filters:16,kernel:3,pool:none}"] * 21) + "]"
    first, last = _train(
        tmp_path, "model=cnn", f"model.blocks={plain}", "model.head=[]", steps=40, lr=1e-3
    )
    assert last > 0.95 * first  # measured 2.30 -> 2.27
