"""Per-job overhead of a sweep: N one-epoch digits jobs through lightdl's CLI in one process,
against a plain PyTorch loop training the same N runs in one process.

  (a) lightdl: `python -m lightdl -m data=digits trainer.max_epochs=1 test=false seed=0,...,N-1`
      in a fresh process, Hydra's basic launcher (jobs one after another in that process, so
      torch and Lightning are imported once), every default on (checkpoint, early stopping, NaN
      guard, CSV logger, diagnosis and curves.png, the sweep table and its HTML report).
  (b) plain: a fresh process that imports torch, loads the digits once, splits and standardizes
      them as lightdl does, then for each seed builds the same MLP (64-256-128-10, ReLU), Adam
      lr 1e-3, and trains one epoch in batches of 64 with a validation pass.

Both are timed from launch to exit (wall), with each child's own peak RSS (os.wait4). Per-job
overhead = (wall - sum of the jobs' fit seconds) / N; lightdl's fit seconds are each job's
summary.json `fit_seconds` (Trainer.fit only). lightdl's wall is also split by file times:
start-up (launch to the first job's .hydra/config.yaml), in-job work outside fit (summary.json
`wall_seconds - fit_seconds`: imports in the first job, then building, diagnosis, curves.png),
between jobs (a summary.json to the next job's config.yaml), and the end (the last summary.json
to exit: sweep table, report). The steady per-job overhead, what one more job adds besides its
fit, is the median in-job figure of jobs 2..N plus the mean gap between jobs.

Finally, in this process, lightdl.build.build_datamodule is timed three times on the same config
(as the sweep's first jobs call it): later times about as long as the first, less its one-off
imports, mean each job re-loads the data.

Run from the repository root:

    .venv/bin/python benchmarks/sweep_overhead.py                 # 16 jobs
    .venv/bin/python benchmarks/sweep_overhead.py --jobs 4 --json sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SWEEP = ["data=digits", "trainer.max_epochs=1", "test=false"]


def run_child(command: list[str], log: Path) -> tuple[float, float, float]:
    """(wall seconds, launch time.time(), the child's peak RSS in MiB); exits if it fails."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    with log.open("w") as out:
        launched, started = time.time(), time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage, unlike communicate()
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(
            f"{' '.join(command[:4])} ... failed ({child.returncode}):\n{log.read_text()[-3000:]}"
        )
    return wall, launched, usage.ru_maxrss / 1024


def run_lightdl(jobs: int, extra: list[str], tmp: Path) -> dict:
    sweep_dir = tmp / "sweep"
    seeds = ",".join(str(s) for s in range(jobs))
    command = [sys.executable, "-m", "lightdl", "-m", *SWEEP, f"seed={seeds}", *extra]
    command.append(f"hydra.sweep.dir={sweep_dir}")
    wall, launched, rss = run_child(command, tmp / "lightdl.log")
    ended = launched + wall
    summaries, starts, ends = [], [], []
    for job in range(jobs):
        folder = sweep_dir / str(job)
        summary = json.loads((folder / "summary.json").read_text())
        if summary["status"] != "completed":
            sys.exit(f"job {job} ended {summary['status']}: {summary.get('error', '')}")
        summaries.append(summary)
        starts.append((folder / ".hydra" / "config.yaml").stat().st_mtime)
        ends.append((folder / "summary.json").stat().st_mtime)
    fits = [s["fit_seconds"] for s in summaries]
    outside = [s["wall_seconds"] - s["fit_seconds"] for s in summaries]
    later = statistics.median(outside[1:]) if jobs > 1 else outside[0]
    between = (
        statistics.mean(b - a for a, b in zip(ends[:-1], starts[1:], strict=True))
        if jobs > 1
        else 0.0
    )
    return {
        "wall_s": wall,
        "peak_rss_mb": rss,
        "fit_s": fits,
        "per_job_overhead_s": (wall - sum(fits)) / jobs,
        "startup_s": starts[0] - launched,
        "first_job_outside_fit_s": outside[0],  # with the one-off imports of torch, Lightning
        "later_jobs_outside_fit_s": later,  # median over jobs 2..N
        "between_jobs_s": between,
        "steady_per_job_overhead_s": later + between,  # what one more job adds besides its fit
        "end_s": ended - ends[-1],
        "val_acc": [s["metrics"].get("val/acc") for s in summaries],
    }


def run_plain(jobs: int, device: str, tmp: Path) -> dict:
    result = tmp / "plain.json"
    command = [sys.executable, __file__, "--plain-worker", str(result), "--jobs", str(jobs)]
    wall, _, rss = run_child([*command, "--device", device], tmp / "plain.log")
    fits = json.loads(result.read_text())["fit_s"]
    return {
        "wall_s": wall,
        "peak_rss_mb": rss,
        "fit_s": fits,
        "per_job_overhead_s": (wall - sum(fits)) / jobs,
    }


def plain_worker(jobs: int, device_name: str, result: Path) -> None:
    """The plain side, in its own process: the digits loaded once, then `jobs` one-epoch runs."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    device = torch.device(device_name)
    digits = load_digits()
    x = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))  # as lightdl
    x, y = x[order[360:]], y[order[360:]]  # the first 360 are the test split
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    (x_val, y_val), (x, y) = (x[order[:180]], y[order[:180]]), (x[order[180:]], y[order[180:]])
    mean, std = x.mean(0, keepdim=True), x.std(0, keepdim=True)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    x, x_val = ((x - mean) / std).to(device), ((x_val - mean) / std).to(device)
    y, y_val = y.to(device), y_val.to(device)
    fits = []
    for seed in range(jobs):
        started = time.perf_counter()
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, 10),
        ).to(device)  # fmt: skip
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        batches = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).to(device)
        model.train()
        for i in range(0, len(x), 64):
            index = batches[i : i + 64]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        fits.append(time.perf_counter() - started)
        print(f"seed {seed}: val/acc={acc:.4f} ({fits[-1]:.3f} s)")
    result.write_text(json.dumps({"fit_s": fits}))


def data_setup_times(extra: list[str], tmp: Path) -> list[float]:
    """Seconds to build (and set up) three fresh DataModules in one process, as a sweep's first
    three jobs do: the first also pays one-off imports; the later ones the per-job re-load."""
    from hydra import compose, initialize_config_dir

    from lightdl import build
    from lightdl.paths import conf_dir

    overrides = [*SWEEP, f"paths.output_dir={tmp}", *extra]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        build.build_datamodule(cfg)  # what each job's train() does: make(cfg, "data"), setup
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an extra lightdl override"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    parser.add_argument("--plain-worker", metavar="RESULT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        plain_worker(args.jobs, args.device, Path(args.plain_worker))
        return

    accelerator = "gpu" if args.device == "cuda" else "cpu"
    extra = [f"trainer.accelerator={accelerator}", *args.set]
    with tempfile.TemporaryDirectory(prefix="lightdl-sweep-overhead-") as tmp:
        ours = run_lightdl(args.jobs, extra, Path(tmp))
        theirs = run_plain(args.jobs, args.device, Path(tmp))
        setup = data_setup_times(extra, Path(tmp))
    result = {
        "case": "sweep",
        "jobs": args.jobs,
        "device": args.device,
        "ratio": ours["wall_s"] / theirs["wall_s"],
        "lightdl": ours,
        "plain": theirs,
        "data_setup_s": setup,
        "settings": {**vars(args), "overrides": [*SWEEP, *extra]},
    }
    for name, side in (("lightdl", ours), ("plain", theirs)):
        print(
            f"{name:7}: {args.jobs} jobs in {side['wall_s']:.2f} s, fit {sum(side['fit_s']):.2f} s, "
            f"per-job overhead {side['per_job_overhead_s']:.3f} s, peak RSS {side['peak_rss_mb']:.0f} MiB"
        )
    print(
        f"lightdl wall: start-up {ours['startup_s']:.2f} s; outside fit in the first job "
        f"{ours['first_job_outside_fit_s']:.2f} s, in each later one "
        f"{ours['later_jobs_outside_fit_s']:.3f} s (median), + {ours['between_jobs_s']:.3f} s "
        f"between jobs; end {ours['end_s']:.2f} s"
    )
    print(
        f"data set-up per fresh DataModule: {setup[0]:.3f} s (first), then "
        f"{', '.join(f'{t:.3f}' for t in setup[1:])} s (what each later job pays)"
    )
    print(f"ratio (wall): {result['ratio']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
