"""The sweep table: columns in a readable order, tiny values still visible, the gap computed."""

from __future__ import annotations

import json

from lightdl.sweep_table import collect, render


def _job(sweep, name, metrics, **extra):
    (sweep / name).mkdir()
    summary = {"status": "completed", "overrides": [f"x={name}"], "metrics": metrics, **extra}
    (sweep / name / "summary.json").write_text(json.dumps(summary))


def test_table_keeps_tiny_values_and_sorts_layers_numerically(tmp_path):
    metrics = {f"grad_norm/layer_{i}": 1.0 for i in (0, 2, 10)}
    _job(tmp_path, "0", {**metrics, "grad_norm/first_over_last": 6.2e-06})
    _, markdown = render(collect(tmp_path))
    header = markdown.splitlines()[0]
    assert header.index("layer_2") < header.index("layer_10")
    assert "6.2e-06" in markdown


def test_gap_uses_eval_mode_training_accuracy_when_there_is_one(tmp_path):
    _job(
        tmp_path,
        "0",
        {"train/acc": 0.80, "train/eval_acc": 0.95, "val/acc": 0.90},
        best={"epoch": 3},
    )
    _job(tmp_path, "1", {"train/acc": 0.99, "val/acc": 0.90})
    rows = collect(tmp_path)
    assert abs(rows[0]["gap/train_minus_val_acc"] - 0.05) < 1e-9 and rows[0]["best_epoch"] == 3
    assert abs(rows[1]["gap/train_minus_val_acc"] - 0.09) < 1e-9
