"""callbacks=histograms: weights, gradients and activations read back from TensorBoard and W&B."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from conftest import fit_net, make_cfg, wandb_records

from lightdl import build
from lightdl.callbacks.histograms import Histograms, binned, edges
from lightdl.errors import ConfigError
from lightdl.loggers import build_loggers, finish_loggers

BINS = 16
EVERY = 2
STEPS = 3  # steps 0, 1, 2: sampled at 0 and 2
WATCHED = "net.1.weight"  # the MLP's first Linear (net.0 is Flatten)
# (tag, number of values): the first Linear's weight (64 inputs x 16 units) and gradient, its output
# and the ReLU's on a training batch (64 examples x 16 units)
EXPECTED = {
    f"weights/{WATCHED}": 64 * 16,
    "weights/net.1.bias": 16,
    f"grads/{WATCHED}": 64 * 16,
    "activations/net.1": 64 * 16,
    "activations/net.2": 64 * 16,
}


class Record(L.Callback):
    """At every step: how many forward hooks the net has after the backward pass, and then (after
    Histograms, same hook) a copy of one weight and its gradient as the optimizer sees them."""

    def __init__(self) -> None:
        self.weights, self.grads, self.hooks = {}, {}, {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        param = dict(pl_module.named_parameters())[WATCHED]
        step = trainer.global_step
        self.weights[step], self.grads[step] = param.detach().clone(), param.grad.clone()

    def on_after_backward(self, trainer, pl_module) -> None:
        hooks = sum(len(m._forward_hooks) for m in pl_module.modules())
        self.hooks[trainer.global_step] = hooks


def fit_logged(tmp_path, logger: str, *callbacks):
    """The composed MLP on digits trained for STEPS steps with the given loggers."""
    cfg = make_cfg(
        tmp_path,
        f"logger={logger}",
        "model.hidden=[16]",
        f"trainer.limit_train_batches={STEPS}",
        "trainer.limit_val_batches=1",
    )
    datamodule = build.build_datamodule(cfg)
    regularizers = build.build_regularizers(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, regularizers)
    task = build.build_task(cfg, net, datamodule, regularizers)
    loggers = build_loggers(cfg, tmp_path / "run", None)
    trainer = build.build_trainer(cfg, list(callbacks), loggers, regularizers, tmp_path / "run")
    try:
        trainer.fit(task, datamodule=datamodule)
    finally:
        finish_loggers()  # closes the W&B run (wandb.finish)
    return trainer


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One run with TensorBoard and W&B: (run dir, the Histograms callback, the Record)."""
    tmp_path = tmp_path_factory.mktemp("histograms")
    callback, record = Histograms(every_n_steps=EVERY, bins=BINS), Record()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        patch.delenv("WANDB_API_KEY", raising=False)
        fit_logged(tmp_path, "[tensorboard,wandb]", callback, record)
    return tmp_path / "run", callback, record


def tensorboard_histograms(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()["histograms"]
    return {tag: {e.step: e.histogram_value for e in events.Histograms(tag)} for tag in tags}


def wandb_histograms(run_dir):
    """{tag: [(trainer/global_step, histogram json)]} from the offline run's history records.
    Items are keyed by a nested_key: (name,) for a number, (tag, field) for a histogram's _type,
    values and bins."""
    found: dict = {}
    for record in wandb_records(next(run_dir.glob("wandb/offline-run-*/run-*.wandb"))):
        if record.WhichOneof("record_type") != "history":
            continue
        flat, nested = {}, {}
        for item in record.history.item:
            path, value = (
                [item.key] if item.key else list(item.nested_key),
                json.loads(item.value_json),
            )
            if len(path) == 1:
                flat[path[0]] = value
            else:
                nested.setdefault(path[0], {})[path[1]] = value
        for tag, value in nested.items():
            if value.get("_type") == "histogram":
                found.setdefault(tag, []).append((flat["trainer/global_step"], value))
    return found


def test_tensorboard_holds_weights_grads_and_activations_at_the_sampled_steps(logged):
    run_dir, callback, record = logged
    assert callback.sampled_steps == [0, 2]
    found = tensorboard_histograms(run_dir)
    assert {t.split("/")[0] for t in found} == {"weights", "grads", "activations"}
    for tag, size in EXPECTED.items():
        assert sorted(found[tag]) == [0, 2], tag
        for histogram in found[tag].values():
            assert histogram.num == size, tag
            assert sum(histogram.bucket) == size and len(histogram.bucket) == BINS + 1, tag
    relu, linear = found["activations/net.2"][0], found["activations/net.1"][0]
    assert relu.min == 0 and linear.min < 0  # the ReLU's outputs, the layer's pre-activations
    assert relu.bucket[1] > 0  # many ReLU outputs are exactly 0: the first bin


def test_tensorboard_histograms_are_the_real_weights_and_gradients(logged):
    """Each logged histogram matches the tensor recorded independently at the same step: the
    gradient is the one the optimizer is about to use, the weights move between samples."""
    run_dir, _, record = logged
    found = tensorboard_histograms(run_dir)
    for kind, recorded in (("weights", record.weights), ("grads", record.grads)):
        for step in (0, 2):
            histogram, tensor = found[f"{kind}/{WATCHED}"][step], recorded[step]
            assert histogram.min == pytest.approx(tensor.min().item(), abs=1e-6)
            assert histogram.max == pytest.approx(tensor.max().item(), abs=1e-6)
            assert histogram.sum == pytest.approx(tensor.sum().item(), abs=1e-4)
            expected = torch.histc(tensor, BINS, tensor.min().item(), tensor.max().item())
            assert abs(torch.tensor(histogram.bucket[1:]) - expected).sum() <= 2  # edge rounding
    assert record.grads[0].abs().sum() > 0
    before, after = found[f"weights/{WATCHED}"][0], found[f"weights/{WATCHED}"][2]
    assert before.sum_squares != after.sum_squares  # trained between the samples


def test_forward_hooks_exist_only_on_sampled_steps(logged):
    _, _, record = logged
    assert record.hooks[0] > 0 and record.hooks[2] > 0
    assert record.hooks[1] == 0


def test_wandb_offline_run_holds_the_same_histograms(logged):
    run_dir, _, record = logged
    found = wandb_histograms(run_dir)
    assert {t.split("/")[0] for t in found} == {"weights", "grads", "activations"}
    for tag, size in EXPECTED.items():
        assert [step for step, _ in found[tag]] == [0, 2], tag
        for _, histogram in found[tag]:
            assert sum(histogram["values"]) == size, tag
            assert len(histogram["values"]) == BINS and len(histogram["bins"]) == BINS + 1, tag
    (_, grads), _ = found[f"grads/{WATCHED}"]
    assert grads["bins"][0] == pytest.approx(record.grads[0].min().item(), abs=1e-6)
    assert grads["bins"][-1] == pytest.approx(record.grads[0].max().item(), abs=1e-6)


@pytest.mark.parametrize("logger", ["csv", None])
def test_without_tensorboard_or_wandb_it_does_nothing(tmp_path, capsys, logger):
    callback, record = Histograms(every_n_steps=1), Record()
    if logger:
        fit_logged(tmp_path, logger, callback, record)
        assert (tmp_path / "run" / "metrics.csv").is_file()
    else:
        fit_net(
            tmp_path,
            "model.hidden=[16]",
            "trainer.limit_train_batches=2",
            callbacks=[callback, record],
            epochs=1,
        )
    assert callback.sampled_steps == [] and set(record.hooks.values()) == {0}
    assert "no tensorboard or wandb logger" in capsys.readouterr().out


def test_binned_counts_every_finite_value_once():
    x = torch.tensor([0.0, 1.0, 1.0, 2.0, 4.0, float("nan"), float("inf")])
    stats, counts = binned(x, 4)
    assert stats.tolist() == [0.0, 4.0, 5.0, 8.0, 22.0]
    assert counts.tolist() == [1, 2, 1, 1]  # [0,1) [1,2) [2,3) [3,4]
    assert edges(0.0, 4.0, 4) == [0.0, 1.0, 2.0, 3.0, 4.0]
    stats, counts = binned(torch.full((5,), 3.0), 2)  # one value: widened to [2.5, 3.5]
    assert counts.tolist() == [0, 5] and edges(3.0, 3.0, 2) == [2.5, 3.0, 3.5]


def test_config_option_builds_the_callback(tmp_path):
    cfg = make_cfg(tmp_path, "callbacks=[checkpoint,histograms]", "callbacks.histograms.bins=8")
    callback = build.make(cfg.callbacks, "histograms")
    assert isinstance(callback, Histograms)
    assert (callback.every_n_steps, callback.bins) == (50, 8)
    with pytest.raises(ConfigError, match=r"callbacks.histograms.bins must be an integer between"):
        Histograms(bins=1000)
    with pytest.raises(ConfigError, match=r"callbacks.histograms.every_n_steps must be an integer"):
        Histograms(every_n_steps=0)
