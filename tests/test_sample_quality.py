"""callbacks=sample_quality: a cached judge scores generated images (class accuracy, class entropy)."""

from __future__ import annotations

import csv
import json
import math
import sys

import lightning as L
import pytest
import torch
from conftest import make_cfg, run_cli
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightdl import build, judge
from lightdl.callbacks.sample_quality import SampleQuality
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

JUDGE = ("digits", "mlp", 5)  # data, model, epochs: an MLP judge on 8x8 digits trains in seconds


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A judge cache holding one digits judge, trained once for this file by the real child run."""
    folder = tmp_path_factory.mktemp("judges")
    judge.ensure_judge(*JUDGE, folder)
    return folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Validation images and labels of data=digits at preprocess=none (pixels in [0, 1])."""
    cfg = make_cfg(tmp_path_factory.mktemp("digits"), "preprocess=none")
    data = build.build_datamodule(cfg)
    return data.splits["val"], data.spec


class Drawer(nn.Module):
    """A fake generator that "draws" real digits: of the class asked for (`shift` 0), of the next
    class (`shift` 1), the real images in turn whatever the class (unconditional), or one image."""

    def __init__(self, images, labels, spec, conditional=True, shift=0, single=False):
        super().__init__()
        self.images, self.labels, self.spec = images, labels, spec
        self.conditional, self.shift, self.single, self.latent_dim = conditional, shift, single, 4
        self.w = nn.Parameter(torch.zeros(1))  # something for the fake task to train

    def generate(self, z, labels=None):
        if self.single:
            return self.images[:1].expand(len(z), *self.images.shape[1:])
        if labels is None:
            return self.images[torch.arange(len(z)) % len(self.images)]
        picked = []
        for i, c in enumerate(((labels + self.shift) % self.spec.num_classes).tolist()):
            of_class = self.images[self.labels == c]
            picked.append(of_class[i % len(of_class)])
        return torch.stack(picked)


class Task(L.LightningModule):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        return self.net.w.square().sum() + 0 * batch[0].sum()

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, net, callback, epochs=2):
    loader = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        default_root_dir=str(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=1,
    )
    task = Task(net)
    trainer.fit(task, loader, loader)
    return task, trainer


def measured(run, net):
    """The numbers a fresh callback with the judge `run` gives for `net` (no Trainer)."""
    callback, task = SampleQuality(judge=str(run)), Task(net)
    callback.setup(None, task, "fit")
    return {k: float(v) for k, v in callback.measure(task).items()}


# ---- the cached judge ---------------------------------------------------------------------------


def test_judge_is_trained_once_then_reused(cache, monkeypatch, capsys):
    run = cache / "digits_mlp"
    assert judge.finished(run)
    assert json.loads((run / "summary.json").read_text())["run_dir"] == str(run)
    # no temporary folder left behind, only the run and its log
    assert sorted(p.name for p in cache.iterdir()) == ["digits_mlp", "digits_mlp.log"]
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached judge was trained again")

    monkeypatch.setattr(judge.subprocess, "run", no_training)
    assert judge.ensure_judge(*JUDGE, cache) == run
    assert "reusing the judge" in capsys.readouterr().out
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp


def test_failed_judge_training_says_where_its_log_is_and_caches_nothing(tmp_path, monkeypatch):
    failing = [sys.executable, "-c", "print('judge run broke'); raise SystemExit(2)"]
    monkeypatch.setattr(judge, "command", lambda *args: failing)
    with pytest.raises(ConfigError, match="could not train its judge") as caught:
        judge.ensure_judge("digits", "mlp", 1, tmp_path)
    log = tmp_path / "digits_mlp.log"
    assert str(log) in str(caught.value) and "judge run broke" in log.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["digits_mlp.log"]  # no half-made judge


# ---- the numbers show what the samples are --------------------------------------------------------


def test_accuracy_and_entropy_tell_right_wrong_and_collapsed_samples(cache, digits, tmp_path):
    (images, labels), spec = digits
    # judge null: the callback finds the cached judge for (data, judge_model)
    callback = SampleQuality(cache_dir=str(cache), judge_model="mlp", judge_epochs=5, data="digits")
    task, trainer = fit(tmp_path, Drawer(images, labels, spec), callback)
    assert task.training  # modes restored after each measurement
    with torch.no_grad():
        judge_acc = float((callback.judge_net(images).argmax(-1) == labels).float().mean())
    right = {k: float(v) for k, v in trainer.callback_metrics.items() if "sample" in k}
    assert right["val/sample_acc"] > 0.8 and abs(right["val/sample_acc"] - judge_acc) < 0.05
    assert right["val/sample_class_entropy"] > 0.95 * math.log(10)
    assert callback.labels.bincount().tolist() == [100] * 10  # balanced requests

    run = cache / "digits_mlp"
    wrong = measured(run, Drawer(images, labels, spec, shift=1))
    assert wrong["val/sample_acc"] < 0.2
    unconditional = measured(run, Drawer(images, labels, spec, conditional=False))
    assert "val/sample_acc" not in unconditional
    assert unconditional["val/sample_class_entropy"] > 0.95 * math.log(10)
    collapsed = measured(run, Drawer(images, labels, spec, conditional=False, single=True))
    assert collapsed["val/sample_class_entropy"] < 1e-6


def test_gan_run_logs_entropy_in_metrics_csv_and_summary(cache, tmp_path):
    run = tmp_path / "run"
    done = run_cli(
        "model=gan",
        "data=digits",
        "preprocess=none",
        "callbacks=[sample_quality]",
        f"callbacks.sample_quality.judge={cache / 'digits_mlp'}",
        "callbacks.sample_quality.n=200",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=3",
        "trainer.enable_progress_bar=false",
        "test=false",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sample_quality: judging with" in done.stdout
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    values = [float(r["val/sample_class_entropy"]) for r in rows if r["val/sample_class_entropy"]]
    assert len(values) == 2 and all(0 <= v <= math.log(10) + 1e-6 for v in values)
    assert "val/sample_acc" not in rows[0]  # gan is unconditional
    summary = json.loads((run / "summary.json").read_text())
    assert "val/sample_class_entropy" in summary["metrics"]


# ---- bad inputs -----------------------------------------------------------------------------------


def test_bad_judges_and_nets_are_refused_in_one_sentence(cache, digits, tmp_path):
    (images, labels), spec = digits
    net = Drawer(images, labels, spec)
    with pytest.raises(ConfigError, match="judge=.*expected an earlier lightdl run directory"):
        SampleQuality(judge=str(tmp_path / "nowhere")).setup(None, Task(net), "fit")
    three = Drawer(images, labels, DataSpec(spec.input_shape, 3, "image"))
    with pytest.raises(ConfigError, match="tells 10 classes apart, but this data has 3"):
        SampleQuality(judge=str(cache / "digits_mlp")).setup(None, Task(three), "fit")
    with pytest.raises(ConfigError, match="trained on data=digits, but this run uses data=mnist"):
        SampleQuality(judge=str(cache / "digits_mlp"), data="mnist").setup(None, Task(net), "fit")
    with pytest.raises(ConfigError, match="not Linear"):
        SampleQuality(judge=str(cache / "digits_mlp")).setup(None, Task(nn.Linear(2, 2)), "fit")
    with pytest.raises(ConfigError, match="judge_model must be a classifier"):
        judge.ensure_judge("digits", "gan", 1, tmp_path)
    with pytest.raises(ConfigError, match="n must be an integer >= 1"):
        SampleQuality(n=0)
