"""The command line as a user meets it, each case in a fresh process."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import run_cli

TINY = [
    "data=digits",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


def test_help_lists_every_group_and_option_without_torch():
    probe = (
        "import sys, runpy; sys.argv=['lightdl','--help']\n"
        "try: runpy.run_module('lightdl', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from lightdl.paths import group_names, options

    for group in group_names():
        assert f"\n  {group}\n" in done.stdout
        for option in options(group):
            assert f" {option} " in done.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["model=mlpp"], "unknown option 'mlpp' for group 'model'; choose one of:"),
        (["optimizer.lrr=0.1"], "unknown key 'optimizer.lrr'. Did you mean 'optimizer.lr'?"),
        (["+optimizer.lrr=0.1"], "unknown key 'optimizer.lrr'. Did you mean 'optimizer.lr'?"),
        (["data.batch_size=0"], "data.batch_size must be an integer >= 1 or 'full', got 0."),
        (["optimizer.lr=-1"], "optimizer.lr must be a number > 0, got -1."),
        (["regularizer=dropout", "regularizer.dropout.p=1.5"], "regularizer.dropout.p must be"),
        (["model.hidden=[64,0]"], "model.hidden must be a list of integers >= 1"),
        (["trainer.max_epochs=0"], "trainer.max_epochs must be an integer >= 1"),
        (["monitor=val/accuracy"], "monitor='val/accuracy' is never logged by this task"),
        (["data=fashion_mnist", "data.data_dir=/nonexistent"], "does not hold the Fashion-MNIST"),
    ],
)
def test_bad_input_gets_one_sentence_and_exit_code_2(tmp_path, args, needle):
    done = run_cli(*TINY, *args, cwd=tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("lightdl: error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and needle in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_debug_env_shows_the_traceback(tmp_path):
    done = run_cli(*TINY, "model=mlpp", cwd=tmp_path, env={"LIGHTDL_DEBUG": "1"})
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_diverged_run_says_so_and_exits_non_zero(tmp_path):
    done = run_cli(
        "data=digits", "optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=2", cwd=tmp_path
    )
    assert done.returncode == 3
    assert "status: diverged - training loss became non-finite at step" in done.stdout
    summary = json.loads(next((tmp_path / "outputs").glob("*/*/summary.json")).read_text())
    assert summary["status"] == "diverged"


def test_single_run_leaves_all_artefacts_and_wandb_offline(tmp_path):
    done = run_cli(*TINY, "logger=[csv,tensorboard,wandb]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run = next((tmp_path / "outputs").glob("*/*/"))
    assert f"run dir: {run}" in done.stdout.replace(str(run) + "/", str(run))
    assert "test/acc=" in done.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and "test/acc" in summary["metrics"]
    for key in ("best", "epochs", "wall_seconds", "trainable_params", "overrides", "versions"):
        assert key in summary
    for path in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "metrics.csv",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    ):
        assert (run / path).is_file(), path
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    wandb_run = next((run / "wandb").glob("offline-run-*"))
    assert json.loads((wandb_run / "files" / "summary.json").read_text())["status"] == "completed"
    assert "optimizer" in (wandb_run / "files" / ".hydra" / "config.yaml").read_text()
    assert b"optimizer.lr" in next(wandb_run.glob("*.wandb")).read_bytes()


def test_multirun_writes_one_dir_per_job_and_a_table(tmp_path):
    done = run_cli(
        "-m",
        *TINY,
        "optimizer=sgd,adam",
        "init=xavier_uniform,he_normal",
        "logger=[csv,wandb]",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*/"))
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1", "2", "3"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["completed"] * 4
    assert sum("optimizer=sgd" in r["overrides"].split() for r in rows) == 2
    assert all(float(r["test/acc"]) >= 0 for r in rows)
    assert "| job | overrides | status |" in (sweep / "summary.md").read_text()
    wandb_runs = list(sweep.glob("*/wandb/offline-run-*"))
    assert len(wandb_runs) == 4  # one W&B run per job


def test_a_diverged_job_does_not_stop_the_sweep(tmp_path):
    done = run_cli(
        "-m",
        *TINY,
        "optimizer=sgd",
        "optimizer.lr=1e6,0.05",
        "trainer.limit_train_batches=25",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*/"))
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["diverged", "completed"]


def test_two_runs_started_together_never_share_a_directory(tmp_path):
    import os

    env = {**os.environ, "LIGHTDL_OUTPUTS": str(tmp_path / "outputs"), "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "lightdl", *TINY, "test=false"]
    procs = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert len(list((tmp_path / "outputs").glob("*/*/summary.json"))) == 2
