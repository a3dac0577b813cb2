"""callbacks=sample_quality: a cached judge scores generated images (class accuracy, class entropy)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import make_cfg, run_cli
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightdl import build, judge
from lightdl.callbacks import sample_quality
from lightdl.callbacks.sample_quality import SampleQuality
from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

JUDGE = ("digits", "mlp", 5)  # data, model, epochs: an MLP judge on 8x8 digits trains in seconds
KEY = "digits_mlp_e5"  # its cache entry


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


def fake_training(calls, delay=0.0):
    """A stand-in for the child judge run (subprocess.run): records the command line and its
    environment, waits `delay` seconds, then leaves a finished run in its hydra.run.dir."""

    def run(cmd, **kwargs):
        calls.append((cmd, kwargs["env"]))
        time.sleep(delay)
        work = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1][1:-1])
        (work / "checkpoints").mkdir()
        (work / "checkpoints" / "last.ckpt").write_text("fake")
        (work / "summary.json").write_text(json.dumps({"status": "completed"}))
        return subprocess.CompletedProcess(cmd, 0)

    return run


def test_judge_is_trained_once_then_reused(cache, monkeypatch, capsys):
    run = cache / KEY
    assert judge.finished(run)
    assert json.loads((run / "summary.json").read_text())["run_dir"] == str(run)
    # no temporary folder left behind, only the run, its log and its lock file
    assert sorted(p.name for p in cache.iterdir()) == [KEY, f"{KEY}.lock", f"{KEY}.log"]
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
    log = tmp_path / "digits_mlp_e1.log"
    assert str(log) in str(caught.value) and "judge run broke" in log.read_text()
    # no half-made judge
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_mlp_e1.lock", "digits_mlp_e1.log"]


def test_parallel_jobs_asking_for_one_judge_train_it_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(judge.subprocess, "run", fake_training(calls, delay=0.5))
    monkeypatch.setenv("LOCAL_RANK", "1")  # as inside a DDP rank
    monkeypatch.setenv("MASTER_PORT", "12910")
    start = threading.Barrier(2)

    def job():
        start.wait()
        return judge.ensure_judge("digits", "mlp", 2, tmp_path)

    with ThreadPoolExecutor(2) as pool:
        paths = [f.result() for f in [pool.submit(job), pool.submit(job)]]
    assert len(calls) == 1  # the second job waited for the lock, then reused the first's judge
    assert paths[0] == paths[1] == tmp_path / "digits_mlp_e2" and judge.finished(paths[0])
    env = calls[0][1]
    assert "LOCAL_RANK" not in env and "MASTER_PORT" not in env  # the child trains alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "digits_mlp_e2",
        "digits_mlp_e2.lock",
        "digits_mlp_e2.log",
    ]


def test_epochs_and_classes_are_part_of_the_cache_key(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(judge.subprocess, "run", fake_training(calls))
    two = judge.ensure_judge("digits", "mlp", 2, tmp_path)
    assert judge.ensure_judge("digits", "mlp", 2, tmp_path) == two and len(calls) == 1
    ten = judge.ensure_judge("digits", "mlp", 10, tmp_path)  # not the 2-epoch judge
    assert len(calls) == 2 and ten.name == "digits_mlp_e10"
    assert "trainer.max_epochs=10" in calls[1][0]
    subset = judge.ensure_judge("digits", "mlp", 2, tmp_path, classes=[5, 6, 7])
    assert len(calls) == 3 and subset.name == "digits_mlp_e2_c5-6-7"
    assert "data.classes=[5,6,7]" in calls[2][0]
    assert not any(a.startswith("data.classes") for a in calls[0][0])
    # the child's overrides compose to a judge of exactly those classes, in that order
    overrides = [a for a in calls[2][0][3:] if not a.startswith("hydra.")]
    cfg = make_cfg(tmp_path / "cfg", *overrides, fast=False)
    assert list(cfg.data.classes) == [5, 6, 7] and cfg.trainer.max_epochs == 2
    assert build.build_datamodule(cfg).spec.num_classes == 3


def test_callback_asks_for_a_judge_of_the_datamodules_classes(digits, tmp_path, monkeypatch):
    (images, labels), spec = digits
    asked = []
    monkeypatch.setattr(sample_quality, "ensure_judge", lambda *args: asked.append(args) or "j")
    monkeypatch.setattr(sample_quality, "load_judge", lambda *args: nn.Identity())
    three = DataSpec(spec.input_shape, 3, "image")
    trainer = SimpleNamespace(datamodule=SimpleNamespace(classes=[5, 6, 7], spec=three))
    callback = SampleQuality(cache_dir=str(tmp_path), judge_epochs=3, data="digits")
    callback.setup(trainer, Task(Drawer(images, labels, three)), "fit")
    assert asked == [("digits", "cnn", 3, str(tmp_path), [5, 6, 7])]


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

    run = cache / KEY
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
        f"callbacks.sample_quality.judge={cache / KEY}",
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
        SampleQuality(judge=str(cache / KEY)).setup(None, Task(three), "fit")
    with pytest.raises(ConfigError, match="trained on data=digits, but this run uses data=mnist"):
        SampleQuality(judge=str(cache / KEY), data="mnist").setup(None, Task(net), "fit")
    with pytest.raises(ConfigError, match="not Linear"):
        SampleQuality(judge=str(cache / KEY)).setup(None, Task(nn.Linear(2, 2)), "fit")
    with pytest.raises(ConfigError, match="judge_model must be a classifier"):
        judge.ensure_judge("digits", "gan", 1, tmp_path)
    with pytest.raises(ConfigError, match="n must be an integer >= 1"):
        SampleQuality(n=0)
