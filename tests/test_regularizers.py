"""The regularizer group: penalties, structural layers and gradient clipping, each shown by its effect."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import fit_net, make_cfg
from torch import nn

from lightdl import build
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.init import weights
from lightdl.models.mlp import MLP
from lightdl.regularizers import InputNoise
from lightdl.train import train

SPEC = DataSpec(input_shape=(64,), num_classes=10, kind="vector")


def _weight_norm(net):
    return float(sum(w.pow(2).sum() for w in weights(net)).sqrt())


def test_l2_gives_smaller_weights(tmp_path):
    plain, _ = fit_net(tmp_path, "optimizer=sgd")
    decayed, trainer = fit_net(
        tmp_path, "optimizer=sgd", "regularizer=l2", "regularizer.l2.lam=0.3"
    )
    assert _weight_norm(decayed) < 0.8 * _weight_norm(plain)
    assert float(trainer.callback_metrics["train/penalty"]) > 0


def _small_fraction(net, below=1e-3):
    flat = torch.cat([w.detach().flatten() for w in weights(net)])
    return float((flat.abs() < below).float().mean())


def test_l1_gives_sparser_weights(tmp_path):
    args = ("optimizer=sgd", "optimizer.lr=0.05")
    plain, _ = fit_net(tmp_path, *args)
    sparse, trainer = fit_net(tmp_path, *args, "regularizer=l1", "regularizer.l1.lam=0.003")
    assert _small_fraction(sparse) > 5 * _small_fraction(plain)  # measured: 0.12 vs 0.013
    assert float(trainer.callback_metrics["val/acc"]) > 0.6  # sparse, and still learning
    assert float(trainer.callback_metrics["train/penalty"]) > 0


def test_penalties_are_logged_apart_from_the_loss(tmp_path):
    """train/loss is the data loss alone; train/penalty is elastic's l1*sum|w| + (l2/2)*sum w^2."""
    cfg = make_cfg(
        tmp_path,
        "regularizer=elastic",
        "regularizer.elastic.l1=0.01",
        "regularizer.elastic.l2=0.02",
    )
    regularizers = build.build_regularizers(cfg)
    net = MLP(SPEC, hidden=[16])
    w = weights(net)
    expected = 0.01 * sum(t.abs().sum() for t in w) + 0.01 * sum(t.pow(2).sum() for t in w)
    assert float(regularizers[0].penalty(w)) == pytest.approx(float(expected), rel=1e-5)
    _, trainer = fit_net(tmp_path, "regularizer=elastic", epochs=1)
    assert {"train/loss", "train/penalty"} <= set(trainer.callback_metrics)


def test_weight_decay_equals_l2_under_plain_sgd(tmp_path):
    args = ("optimizer=sgd", "optimizer.lr=0.1")
    with_l2, _ = fit_net(tmp_path, *args, "regularizer=l2", "regularizer.l2.lam=0.05", epochs=2)
    decayed, _ = fit_net(
        tmp_path, *args, "regularizer=weight_decay", "regularizer.weight_decay.lam=0.05", epochs=2
    )
    for a, b in zip(weights(with_l2), weights(decayed), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    plain, _ = fit_net(tmp_path, *args, epochs=2)
    assert _weight_norm(decayed) < 0.9 * _weight_norm(plain)


def test_weight_decay_is_decoupled_from_adaptive_optimizers(tmp_path):
    """With Adam, the L2 gradient is rescaled by Adam; decoupled decay is not: results differ."""
    with_l2, _ = fit_net(tmp_path, "regularizer=l2", "regularizer.l2.lam=0.05", epochs=1)
    decayed, _ = fit_net(
        tmp_path, "regularizer=weight_decay", "regularizer.weight_decay.lam=0.05", epochs=1
    )
    assert not torch.allclose(weights(with_l2)[0], weights(decayed)[0], atol=1e-4)


def test_weight_decay_with_adam_is_adamw(tmp_path):
    """Decay applied before Adam's step, on weights only, equals torch's AdamW with biases undecayed."""
    torch.manual_seed(0)
    ours, reference = MLP(SPEC, hidden=[16]), MLP(SPEC, hidden=[16])
    reference.load_state_dict(ours.state_dict())
    decay = build.build_regularizers(
        make_cfg(tmp_path, "regularizer=weight_decay", "regularizer.weight_decay.lam=0.1")
    )[0]
    adam = torch.optim.Adam(ours.parameters(), lr=0.01)
    w_ids = {id(w) for w in weights(reference)}
    adamw = torch.optim.AdamW(
        [
            {"params": [p for p in reference.parameters() if id(p) in w_ids], "weight_decay": 0.1},
            {
                "params": [p for p in reference.parameters() if id(p) not in w_ids],
                "weight_decay": 0.0,
            },
        ],
        lr=0.01,
    )
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    for _ in range(5):
        for net, optimizer in ((ours, adam), (reference, adamw)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            if net is ours:
                decay.before_optimizer_step(optimizer, weights(ours))
            optimizer.step()
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_weight_decay_is_refused_beside_adamw(tmp_path):
    cfg = make_cfg(tmp_path, "optimizer=adamw", "regularizer=weight_decay")
    net = MLP(SPEC, hidden=[8])
    with pytest.raises(ConfigError, match="optimizer=adamw already decays weights"):
        build.build_task(cfg, net, SPEC, build.build_regularizers(cfg))


@pytest.mark.parametrize("option", ["dropout", "batchnorm"])
def test_hidden_layer_regularizers_need_hidden_layers(tmp_path, option):
    cfg = make_cfg(tmp_path, f"regularizer={option}", "model.hidden=[]")
    with pytest.raises(ConfigError, match="model.hidden is empty"):
        build.build_net(cfg, SPEC, build.build_regularizers(cfg))


def test_dropout_is_random_in_training_and_deterministic_at_eval():
    torch.manual_seed(0)
    net = MLP(SPEC, hidden=[128], dropout=0.5)
    x = torch.randn(16, 64)
    net.train()
    assert not torch.equal(net(x), net(x))
    hidden = net[2](net[1](net[0](x)))
    kept = net[3](hidden)
    survivors = kept != 0
    assert torch.allclose(kept[survivors], 2 * hidden[survivors])  # scaled by 1/(1-p)
    net.eval()
    assert torch.equal(net(x), net(x))
    assert torch.equal(net(x), net[4](hidden))  # eval: no drop, no rescale


def test_batchnorm_sits_between_affine_and_activation_and_uses_running_stats_at_eval(tmp_path):
    net, _ = fit_net(tmp_path, "regularizer=batchnorm", epochs=1)
    kinds = [type(m) for m in net]
    assert kinds[1:4] == [nn.Linear, nn.BatchNorm1d, nn.ReLU]
    bn = net[2]
    assert float(bn.running_mean.abs().sum()) > 0  # running statistics were collected
    net.eval()
    x = torch.randn(8, 64)
    z = net[1](net[0](x))
    expected = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    assert torch.allclose(bn(z), expected, atol=1e-5)
    assert torch.allclose(
        net(x[:1]), net(x)[:1], atol=1e-5
    )  # eval output does not depend on the batch


def test_batchnorm_is_refused_where_the_model_has_no_place_for_it(tmp_path):
    cfg = make_cfg(tmp_path, "model=lstm", "regularizer=batchnorm")
    with pytest.raises(ConfigError, match="regularizer=batchnorm does not apply to Recurrent"):
        build.build_net(cfg, DataSpec((1, 8, 8), 10, "image"), build.build_regularizers(cfg))


class UpdateStats(L.Callback):
    """With plain SGD the update is -lr * grad: |update| / lr is the gradient actually applied."""

    def __init__(self, lr):
        self.lr, self.norms, self.max_abs, self._before = lr, [], [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        delta = [
            (p.detach() - b) / self.lr
            for p, b in zip(pl_module.parameters(), self._before, strict=True)
        ]
        self.norms.append(float(torch.sqrt(sum(d.pow(2).sum() for d in delta))))
        self.max_abs.append(float(max(d.abs().max() for d in delta)))


ROUGH = ("optimizer=sgd", "optimizer.lr=0.1", "init=normal", "init.std=0.5")


@pytest.mark.parametrize(
    ("option", "key", "bound", "measure", "unclipped_above"),
    [
        ("clip_norm", "max_norm", 0.5, "norms", 1.0),  # total gradient norm
        ("clip_value", "max_value", 0.05, "max_abs", 0.1),  # every gradient element
    ],
)
def test_clipping_bounds_the_gradient_at_every_step(
    tmp_path, option, key, bound, measure, unclipped_above
):
    free, clipped = UpdateStats(0.1), UpdateStats(0.1)
    fit_net(tmp_path, *ROUGH, callbacks=[free])
    fit_net(
        tmp_path,
        *ROUGH,
        f"regularizer={option}",
        f"regularizer.{option}.{key}={bound}",
        callbacks=[clipped],
    )
    assert max(getattr(free, measure)) > unclipped_above
    assert max(getattr(clipped, measure)) <= bound * (1 + 1e-4)


def test_clip_norm_and_clip_value_cannot_be_combined(tmp_path):
    cfg = make_cfg(tmp_path, "regularizer=[clip_norm,clip_value]")
    with pytest.raises(
        ConfigError, match=r"regularizer=\[clip_norm,clip_value\] cannot be combined"
    ):
        build.build_trainer(cfg, [], [], build.build_regularizers(cfg), tmp_path)


def test_label_smoothing_changes_the_target(tmp_path):
    cfg = make_cfg(tmp_path, "regularizer=label_smoothing", "regularizer.label_smoothing.eps=0.2")
    regularizers = build.build_regularizers(cfg)
    net = MLP(SPEC, hidden=[8])
    loss_fn = build.build_loss(cfg, net, regularizers)
    logits, y = torch.randn(32, 10), torch.randint(0, 10, (32,))
    log_p = logits.log_softmax(-1)
    target = torch.full_like(log_p, 0.2 / 10).scatter_(1, y[:, None], 0.8 + 0.2 / 10)
    assert float(loss_fn(logits, y)) == pytest.approx(
        float(-(target * log_p).sum(1).mean()), rel=1e-5
    )
    # a confident, correct prediction is no longer free
    sure = torch.nn.functional.one_hot(y, 10).float() * 50
    assert float(loss_fn(sure, y)) > 1.0


def test_label_smoothing_leaves_the_evaluation_loss_alone(tmp_path):
    cfg = make_cfg(tmp_path, "regularizer=label_smoothing")
    regularizers = build.build_regularizers(cfg)
    task = build.build_task(cfg, MLP(SPEC, hidden=[8]), SPEC, regularizers)
    assert task.loss_fn.label_smoothing == 0.1 and task.eval_loss_fn.label_smoothing == 0.0


def test_gap_is_measured_in_eval_mode_on_a_training_sample(tmp_path):
    """train/eval_acc is the eval-mode accuracy on the datamodule's fixed training probe."""
    net, trainer = fit_net(tmp_path, "regularizer=dropout", "regularizer.dropout.p=0.5", epochs=2)
    x, y = trainer.datamodule.train_probe()
    assert len(y) == len(trainer.datamodule.splits["val"][1])
    net.eval()
    with torch.no_grad():
        expected = float((net(x).argmax(-1) == y).float().mean())
    assert float(trainer.callback_metrics["train/eval_acc"]) == pytest.approx(expected, abs=1e-6)
    # dropout lowers the running train-mode accuracy below the eval-mode one
    assert float(trainer.callback_metrics["train/acc"]) < expected


def test_label_smoothing_needs_a_loss_that_supports_it(tmp_path):
    cfg = make_cfg(tmp_path, "loss=mse", "regularizer=label_smoothing")
    with pytest.raises(ConfigError, match="regularizer=label_smoothing does not apply"):
        build.build_loss(cfg, MLP(SPEC, hidden=[8]), build.build_regularizers(cfg))


class InputStd(L.Callback):
    """Std of the inputs the net sees in training, per epoch, and in validation."""

    def __init__(self):
        self.train, self.val = {}, []

    def setup(self, trainer, pl_module, stage):
        def hook(module, args):
            (
                target := self.train.setdefault(trainer.current_epoch, [])
            ) if module.training else None
            (target if module.training else self.val).append(float(args[0].std()))

        pl_module.net.register_forward_pre_hook(hook)


def test_input_noise_is_annealed_and_never_touches_evaluation(tmp_path):
    seen = InputStd()
    fit_net(
        tmp_path,
        "regularizer=input_noise",
        "regularizer.input_noise.std=2.0",
        "regularizer.input_noise.decay=exponential",
        "regularizer.input_noise.decay_rate=0.5",
        callbacks=[seen],
    )
    per_epoch = [sum(v) / len(v) for _, v in sorted(seen.train.items())]
    clean = sum(seen.val) / len(seen.val)  # standardized inputs: std ~ 1
    for epoch, std in enumerate(per_epoch):  # noise std 2, 1, 0.5 adds in quadrature
        assert std == pytest.approx((clean**2 + (2.0 * 0.5**epoch) ** 2) ** 0.5, rel=0.1)
    assert clean == pytest.approx(1.0, rel=0.15)


def test_input_noise_linear_decay_reaches_zero():
    class Clock:
        estimated_stepping_batches, global_step, current_epoch = 100, 0, 0

    noise = InputNoise(std=0.4, decay="linear")
    stds = []
    for step in (0, 50, 100):
        Clock.global_step = step
        stds.append(noise.current_std(Clock))
    assert stds == pytest.approx([0.4, 0.2, 0.0])
    with pytest.raises(ConfigError, match="decay must be one of"):
        InputNoise(decay="cosine")


def test_regularizers_combine(tmp_path):
    cfg = make_cfg(tmp_path, "regularizer=[l1,dropout,clip_norm]", "regularizer.dropout.p=0.3")
    regularizers = build.build_regularizers(cfg)
    net = build.build_net(cfg, build.build_datamodule(cfg).spec, regularizers)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in net.modules())
    task = build.build_task(cfg, net, build.build_datamodule(cfg).spec, regularizers)
    assert len(task.penalties) == 1
    assert train(cfg, tmp_path / "run")["status"] == "completed"
