"""diagnosis + curves.png: every training run ends with a plot of its curves and a one-line verdict."""

from __future__ import annotations

import json

import pytest
from conftest import make_cfg, run_cli
from PIL import Image

from lightdl.diagnosis import diagnose
from lightdl.errors import ConfigError
from lightdl.train import train


def _rows(train_acc, val_acc, **more):
    return [
        {"epoch": i, "train/eval_acc": t, "val/acc": v, **{k: m[i] for k, m in more.items()}}
        for i, (t, v) in enumerate(zip(train_acc, val_acc, strict=True))
    ]


def test_verdicts_follow_the_thresholds():
    low = diagnose(_rows([0.3, 0.4, 0.5], [0.3, 0.4, 0.5]))
    assert low["verdict"] == "underfitting" and "0.500" in low["message"]
    gap = diagnose(_rows([0.8, 0.9, 0.95, 0.99, 1.0], [0.8, 0.88, 0.85, 0.86, 0.87]))
    assert gap["verdict"] == "overfitting" and gap["epoch"] == 2  # 0.02 at epoch 1, > 0.05 from 2
    assert "since epoch 2" in gap["message"]
    assert diagnose(_rows([0.9, 0.97], [0.9, 0.95]))["verdict"] == "fine"
    assert diagnose(_rows([0.9, 0.97], [0.9, 0.95]), overfit_gap=0.01)["verdict"] == "overfitting"


def test_without_accuracy_the_losses_decide():
    rows = [
        {"epoch": i, "train/loss": t, "val/loss": v}
        for i, (t, v) in enumerate(zip([1.0, 0.6, 0.4, 0.2], [1.0, 0.7, 0.8, 0.9], strict=True))
    ]
    found = diagnose(rows)
    assert found["verdict"] == "overfitting" and found["epoch"] == 2
    rows[-1]["val/loss"] = 0.72
    assert diagnose(rows)["verdict"] == "fine"
    assert diagnose([{"epoch": 0, "train/d_loss": 0.7}])["verdict"] == "unknown"


def test_a_gan_is_not_judged_by_its_loss(tmp_path):
    """A GAN logs train/loss and val/loss (G's, against a moving D): no verdict comes from them."""
    rows = [{"epoch": i, "train/loss": 1.0 - 0.1 * i, "val/loss": 1.0 + 0.5 * i} for i in range(4)]
    assert diagnose(rows)["verdict"] == "overfitting"
    assert diagnose(rows, by_loss=False)["verdict"] == "unknown"
    cfg = make_cfg(tmp_path, "model=gan", "preprocess=none", "+trainer.limit_train_batches=2")
    found = train(cfg, tmp_path / "run")["diagnosis"]
    assert found["verdict"] == "unknown" and "adversarial" in found["message"]


def test_a_resumed_run_is_diagnosed_over_all_its_epochs(tmp_path, monkeypatch):
    """History travels in the checkpoint: after resuming a 2-epoch run to 4, the verdict, the
    curves and the best epoch see epochs 0-3, not only the 2 trained after the resume."""
    from lightdl.callbacks import history

    made = []

    class Recorded(history.History):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(history, "History", Recorded)
    first = train(make_cfg(tmp_path / "a", "trainer.max_epochs=2"), tmp_path / "a" / "run")
    assert "after 2 epochs" in first["diagnosis"]["message"]
    cfg = make_cfg(tmp_path / "b", "trainer.max_epochs=4", f"ckpt_path={tmp_path / 'a' / 'run'}")
    resumed = train(cfg, tmp_path / "b" / "run")
    assert "after 4 epochs" in resumed["diagnosis"]["message"], resumed["diagnosis"]
    assert [row["epoch"] for row in made[-1].epochs] == [0, 1, 2, 3]
    assert resumed["best"]["epoch"] in range(4)


def test_over_parameterized_tiny_data_run_is_diagnosed_as_overfitting(tmp_path):
    """100 digits, two layers of 512: train accuracy reaches 1 while val stays far below."""
    cfg = make_cfg(
        tmp_path,
        "data.train_per_class=10",
        "model.hidden=[512,512]",
        "trainer.max_epochs=15",
        "callbacks=[checkpoint]",
        "diagnosis.plot=true",
    )
    result = train(cfg, tmp_path / "run")
    found = result["diagnosis"]
    assert found["verdict"] == "overfitting", found
    assert found["train_acc"] > 0.98 and found["gap"] > 0.1
    assert result["curves"] == "curves.png"
    assert Image.open(tmp_path / "run" / "curves.png").size[0] > 800  # loss and accuracy panels


def test_one_unit_model_is_diagnosed_as_underfitting_in_summary_and_output(tmp_path):
    run = run_cli(
        "data=digits",
        "model.hidden=[1]",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["diagnosis"]["verdict"] == "underfitting"
    assert summary["diagnosis"]["train_acc"] < 0.5
    assert f"diagnosis: {summary['diagnosis']['message']}" in run.stdout
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000


def test_plot_can_be_turned_off_and_thresholds_are_checked(tmp_path):
    result = train(make_cfg(tmp_path), tmp_path / "run")  # conftest.FAST sets diagnosis.plot=false
    assert "curves" not in result and not (tmp_path / "run" / "curves.png").exists()
    assert result["diagnosis"]["message"].startswith(result["diagnosis"]["verdict"])
    with pytest.raises(ConfigError, match="diagnosis.overfit_gap must be a fraction in"):
        train(make_cfg(tmp_path, "diagnosis.overfit_gap=2"), tmp_path / "run2")
