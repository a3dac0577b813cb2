"""Start-up cost of the CLI: `python -m lightdl --help`, and launch to the first optimizer step.

  --help: wall time of `python -m lightdl --help` in a fresh process, median of --help-runs runs.
  first step: `python -m lightdl` with the defaults (MLP on Fashion-MNIST), launched in a fresh
      process with first_step.FirstStepExit added as one more callback through a Hydra override
      (benchmarks/ on PYTHONPATH; lightdl itself unchanged). The callback writes time.time() at
      the end of the first training batch and exits; the figure is that time minus time.time()
      just before the launch, so it holds interpreter start-up, imports, composition, validation,
      data loading, model and Trainer construction, and the first forward/backward/step.
      Median of --first-step-runs runs; the run directories go to a temporary folder.

Run from the repository root:

    .venv/bin/python benchmarks/startup_time.py
    .venv/bin/python benchmarks/startup_time.py --json startup.json --set data=digits
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


def quiet_env() -> dict[str, str]:
    """The CLI's environment: benchmarks/ importable, W&B offline, outputs kept out of the repo."""
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "WANDB_MODE": "offline"}


def time_help(runs: int) -> list[float]:
    """Wall seconds of `python -m lightdl --help`, one fresh process per run."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "lightdl", "--help"],
            cwd=ROOT,
            env=quiet_env(),
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"--help failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return times


def time_first_step(tmp: Path, overrides: list[str]) -> float:
    """Seconds from launching `python -m lightdl <overrides>` to the end of its first step."""
    mark = tmp / "first_step.txt"
    mark.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "lightdl",
        *overrides,
        f"hydra.run.dir={tmp / 'run'}",
        "+callbacks.first_step._target_=first_step.FirstStepExit",
        f"+callbacks.first_step.path={mark}",
    ]
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, env=quiet_env(), capture_output=True, text=True)
    if done.returncode != 0 or not mark.is_file():
        sys.exit(
            f"the first-step run failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    stamp, step = mark.read_text().split()
    if step != "1":
        sys.exit(f"the first-step mark came after {step} optimizer steps, not 1")
    return float(stamp) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--help-runs", type=int, default=5)
    parser.add_argument("--first-step-runs", type=int, default=3)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for the first-step run (default: none, the default run)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args()

    helps = time_help(args.help_runs)
    with tempfile.TemporaryDirectory(prefix="lightdl-startup-") as tmp:
        firsts = [time_first_step(Path(tmp), args.set) for _ in range(args.first_step_runs)]
    result = {
        "case": "startup",
        "help_s": statistics.median(helps),
        "help_runs": helps,
        "first_step_s": statistics.median(firsts),
        "first_step_runs": firsts,
        "first_step_overrides": args.set,
    }
    print(f"--help        : {result['help_s']:.2f} s (median of {len(helps)})")
    print(f"first step    : {result['first_step_s']:.2f} s (median of {len(firsts)})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
