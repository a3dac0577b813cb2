"""Slow end-to-end checks on real Fashion-MNIST and on an installed wheel (`pytest -m slow`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fmnist = pytest.mark.skipif(
    not FMNIST.is_file(), reason="dataset-fashion-mnist not installed"
)


def _summary(folder: Path) -> dict:
    return json.loads(next(folder.glob("outputs/*/*/summary.json")).read_text())


@needs_fmnist
@pytest.mark.parametrize("args", [[], ["model=lstm", "optimizer=adam"]], ids=["mlp", "lstm"])
def test_one_epoch_on_fashion_mnist_reaches_80_percent(tmp_path, args):
    done = run_cli(*args, "trainer.max_epochs=1", cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _summary(tmp_path)["metrics"]["test/acc"] >= 0.80


def test_wheel_ships_the_configs_and_runs_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("lightdl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # dependencies come from this environment (a .pth line), lightdl itself only from the wheel
    site = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import sysconfig

    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = subprocess.run(
        [str(python), "-c", "import lightdl.paths as p; print(p.conf_dir())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in located.stdout, located.stdout
    done = subprocess.run(
        [str(python), "-m", "lightdl", "data=digits", "trainer.max_epochs=1"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WANDB_MODE": "offline"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _summary(elsewhere)["status"] == "completed"


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    done = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "data=digits",
        "trainer.max_epochs=1",
        "optimizer=sgd,adam",
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summaries = [
        json.loads(p.read_text()) for p in tmp_path.glob("outputs/multirun/*/*/*/summary.json")
    ]
    assert sorted(s["status"] for s in summaries) == ["completed", "completed"]
    assert (next(tmp_path.glob("outputs/multirun/*/*/")) / "summary.csv").is_file()


@needs_fmnist
def test_cnn_fashion_reaches_the_accuracy_in_the_readme(tmp_path):
    """experiment=cnn_fashion in full (about 10 minutes on 2 cores): the README records 0.92."""
    done = run_cli("experiment=cnn_fashion", cwd=tmp_path, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = _summary(tmp_path)
    assert summary["status"] == "completed" and summary["epochs"] == 13
    assert summary["metrics"]["test/acc"] >= 0.915


@needs_fmnist
def test_transfer_learning_table_compares_the_three_ways(tmp_path):
    """experiment=transfer_learning in full: fine-tuning beats scratch and frozen (README table)."""
    import csv

    done = run_cli("experiment=transfer_learning", cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    (table,) = tmp_path.glob("outputs/multirun/*/*/summary.csv")
    with table.open() as f:
        acc = {r["overrides"].split()[0]: float(r["test/acc"]) for r in csv.DictReader(f)}
    stages = ("pretrain", "scratch", "frozen", "finetune")
    assert list(acc) == [f"transfer_stage={s}" for s in stages]
    assert acc["transfer_stage=finetune"] > acc["transfer_stage=scratch"]  # 0.935 vs 0.925
    assert acc["transfer_stage=finetune"] > acc["transfer_stage=frozen"]
    assert acc["transfer_stage=finetune"] > 0.9 and acc["transfer_stage=scratch"] > 0.85
