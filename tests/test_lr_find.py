"""tune=lr_find: Lightning's learning-rate range test on the composed config, and its suggestion."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import make_cfg, run_cli

from lightdl.errors import ConfigError
from lightdl.tune import lr_find, run_tune


def test_cli_prints_the_override_and_leaves_plot_and_numbers(tmp_path):
    run = run_cli(
        "tune=lr_find",
        "data=digits",
        "tune.num_training=60",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    run_dir = tmp_path / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    found = summary["lr_find"]
    assert f"train with: optimizer.lr={found['suggested_lr']:g}" in run.stdout
    assert found["override"] == f"optimizer.lr={found['suggested_lr']:g}"
    curve = json.loads((run_dir / "lr_find.json").read_text())
    lrs = curve["lr"]
    assert len(lrs) == len(curve["loss"]) == found["steps"] <= 60
    assert lrs[0] == pytest.approx(1e-6)
    base = (1.0 / 1e-6) ** (1 / 60)  # exponential: step k runs at min_lr * base**k
    powers = [math.log(lr / 1e-6, base) for lr in lrs]
    assert all(abs(p - round(p)) < 1e-6 for p in powers)
    assert all(b > a for a, b in zip(powers, powers[1:], strict=False)) and lrs[-1] <= 1.0
    assert lrs[0] < found["suggested_lr"] < lrs[-1]
    assert (run_dir / "lr_find.png").stat().st_size > 5_000
    assert not (run_dir / "checkpoints").exists() and "test/acc" not in summary.get("metrics", {})


def test_suggestion_depends_on_the_optimizer(tmp_path):
    """Plain SGD needs a far larger step than Adam on the same net: the suggestion must see it."""
    suggested = {}
    for name in ("adam", "sgd"):
        cfg = make_cfg(tmp_path / name, "tune=lr_find", f"optimizer={name}", "tune.num_training=80")
        suggested[name] = lr_find(cfg, tmp_path / name)["lr_find"]["suggested_lr"]
    assert 1e-4 < suggested["adam"] < 0.1
    assert suggested["sgd"] > 3 * suggested["adam"]


def test_finder_restores_the_initial_weights(tmp_path, monkeypatch):
    """The finder's own training is undone: the net's weights end as they began."""
    from lightdl import train as train_module

    kept = {}
    assemble = train_module.assemble

    def spy(cfg):
        parts = assemble(cfg)
        kept["net"] = parts[2]
        kept["before"] = {k: v.clone() for k, v in parts[2].state_dict().items()}
        return parts

    monkeypatch.setattr(train_module, "assemble", spy)
    lr_find(make_cfg(tmp_path, "tune=lr_find", "tune.num_training=30"), tmp_path)
    after = kept["net"].state_dict()
    assert all(torch.equal(kept["before"][k], after[k]) for k in after)


def test_step_count_schedulers_see_the_tests_own_length(tmp_path):
    """onecycle sizes itself from trainer.estimated_stepping_batches: the finder's step budget."""
    cfg = make_cfg(tmp_path, "tune=lr_find", "scheduler=onecycle", "tune.num_training=20")
    found = lr_find(cfg, tmp_path)["lr_find"]  # before the fix: OverflowError from int(inf)
    assert 10 <= found["steps"] <= 20 and 1e-6 < found["suggested_lr"] < 1


def test_mode_eval_is_refused_from_the_command_line(tmp_path):
    run = run_cli("tune=lr_find", "mode=eval", "data=digits", cwd=tmp_path)
    assert run.returncode == 2
    assert "cannot be combined with mode=eval" in run.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tune.min_lr=1", "tune.max_lr=0.1"], "tune.min_lr must be below tune.max_lr"),
        (["tune.mode=cosine"], "tune.mode must be one of exponential, linear"),
        (["tune.num_training=2"], "tune.num_training must be an integer >= 5"),
        (["mode=eval"], "cannot be combined with mode=eval"),
        (["model=gan", "preprocess=none"], "needs a model trained by one optimizer"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_tune(make_cfg(tmp_path, "tune=lr_find", *overrides), tmp_path)
