"""Wall time of one sweep run sequentially (basic launcher) and in parallel (joblib launcher).

The same multirun, `python -m lightdl -m <sweep>`, is run twice in fresh processes from the
repository root: once with Hydra's basic launcher (jobs one after another, each with torch's default
threads) and once with `hydra/launcher=joblib hydra.launcher.n_jobs=N` (N worker processes, each
job given cores // N torch threads by lightdl.threads). Wall time is measured around the whole
command, so it includes Python and torch start-up (paid once sequentially, once per worker in
parallel) and the sweep table at the end. Each job's own fit_seconds is read back from the sweep's
summary.csv.

    .venv/bin/python benchmarks/joblib_sweep.py                 # the measured 2-job Fashion-MNIST sweep
    .venv/bin/python benchmarks/joblib_sweep.py --tiny          # digits, 1 epoch, seconds: a smoke test
    .venv/bin/python benchmarks/joblib_sweep.py --order joblib,basic --set trainer.max_epochs=2

Run it on an otherwise idle machine: another busy process takes cores from whichever run it overlaps.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = [
    "data=fashion_mnist",
    "model=mlp",
    "optimizer.lr=0.001,0.01",
    "trainer.max_epochs=10",
    "callbacks=[checkpoint,nan_guard]",  # no early stopping: both launchers run the same epochs
    "test=false",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]
TINY = [
    "data=digits",
    "model=mlp",
    "optimizer.lr=0.001,0.01",
    "trainer.max_epochs=1",
    "test=false",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


def run_sweep(overrides: list[str], launcher: list[str], out: Path) -> tuple[float, list[dict]]:
    """Run one multirun in a fresh process; (wall seconds, the sweep table's rows)."""
    sweep_dir = out / "sweep"
    env = {**os.environ, "WANDB_MODE": "offline", "LIGHTDL_OUTPUTS": str(out)}
    command = [sys.executable, "-m", "lightdl", "-m", *launcher, *overrides]
    command.append(f"hydra.sweep.dir={sweep_dir}")
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"sweep failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    with (sweep_dir / "summary.csv").open() as table:
        rows = list(csv.DictReader(table))
    if any(row["status"] != "completed" for row in rows):
        sys.exit(f"a job did not complete: {[row['status'] for row in rows]}")
    return wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="digits, 1 epoch: checks the script")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers (default 2)")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for both runs")
    parser.add_argument("--order", default="basic,joblib", help="which launcher runs first")
    args = parser.parse_args()

    overrides = (TINY if args.tiny else SWEEP) + args.set
    launchers = {
        "basic": [],
        "joblib": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"],
    }
    print(f"sweep: {' '.join(overrides)}  ({len(os.sched_getaffinity(0))} cores)", flush=True)
    walls = {}
    with tempfile.TemporaryDirectory(prefix="joblib_sweep_") as tmp:
        for name in args.order.split(","):
            wall, rows = run_sweep(overrides, launchers[name], Path(tmp) / name)
            walls[name] = wall
            fits = ", ".join(f"{float(r['fit_seconds']):.1f}" for r in rows)
            accs = ", ".join(f"{float(r['val/acc']):.4f}" for r in rows)
            print(
                f"{name:>6}: wall {wall:6.1f} s  ({len(rows)} jobs; fit s: {fits}; val/acc: {accs})"
            )
    ratio = walls["joblib"] / walls["basic"]
    print(f"joblib / basic wall time: {ratio:.2f} (speed-up {1 / ratio:.2f}x)")


if __name__ == "__main__":
    main()
