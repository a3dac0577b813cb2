"""Every study preset in conf/experiment runs as a multirun and writes its comparison table."""

from __future__ import annotations

import csv

import pytest
from conftest import run_cli

from lightdl.paths import options

TINY = [
    "data=digits",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "test=false",
    "trainer.enable_progress_bar=false",
]
# preset -> (jobs in its sweep, a column its table must have)
PRESETS = {
    "xor_perceptron": (2, "val/acc"),
    "init_comparison": (13, "val/acc"),
    "activation_depth": (2, "grad_norm/first_over_last"),
    "loss_comparison": (3, "val/acc"),
    "optimizer_comparison": (5, "val/acc"),
    "lr_sweep": (6, "val/loss"),
    "batch_size_sweep": (6, "wall_seconds"),
    "hidden_units": (5, "gap/train_minus_val_acc"),
    "overfitting_cures": (5, "gap/train_minus_val_acc"),
    "noisy_labels": (2, "best_epoch"),
    "batchnorm_lr": (6, "val/acc"),
    "selu_deep": (4, "grad_norm/first"),
}


def _table(outputs):
    (summary,) = outputs.glob("multirun/*/*/summary.csv")
    with summary.open() as f:
        return list(csv.DictReader(f)), summary.parent


def test_every_preset_is_covered():
    studies = set(options("experiment")) - {"lstm_fashion"}  # lstm_fashion is a single run
    assert studies == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_runs_its_sweep_and_writes_the_table(tmp_path, preset):
    jobs, column = PRESETS[preset]
    args = [f"experiment={preset}", *TINY]
    if preset == "xor_perceptron":
        args = [a for a in args if a != "data=digits"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows, sweep_dir = _table(tmp_path / "outputs")
    assert len(rows) == jobs
    assert all(row["status"] in ("completed", "stopped_early") for row in rows), rows
    assert column in rows[0] and all(row[column] != "" for row in rows)
    assert (sweep_dir / "summary.md").is_file()


def test_xor_perceptron_fails_where_the_hidden_layer_succeeds(tmp_path):
    """The full preset (20 epochs of XOR): the perceptron near chance, one hidden layer well above."""
    result = run_cli("experiment=xor_perceptron", "trainer.enable_progress_bar=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows, _ = _table(tmp_path / "outputs")
    acc = {r["overrides"].split()[0].removeprefix("model="): float(r["test/acc"]) for r in rows}
    assert acc["perceptron"] < 0.7  # chance is 0.5
    assert acc["mlp"] > 0.9  # label noise near the axes caps it a little below 1
