"""The benchmark suite: each case in its own process, lightdl against a plain PyTorch loop, one table.

Cases (each a script in this folder, run as `python <script> ... --json <file>`; run.py reads the
JSON back, never the printed output):

  startup  startup_time.py    `python -m lightdl --help`, and launch to the first optimizer step
                              of the default run (MLP, Fashion-MNIST)
  mlp      epoch_overhead.py  the default MLP on Fashion-MNIST, seconds per epoch, with
                              trainer.steps_per_call=16 (see SETTINGS)
  mlp_default                 the same with the default trainer.steps_per_call=1
  cnn      cnn_throughput.py  model=cnn on Fashion-MNIST, images per second
  lstm     lstm_throughput.py the char-level LSTM language model, tokens per second, with
                              trainer.steps_per_call=16
  sweep16  sweep_overhead.py  16 one-epoch digits jobs in one `python -m lightdl -m` process,
                              against 16 plain trainings in one process; per-job overhead

mlp, cnn, lstm and sweep16 run on the CPU and, with a GPU, once more on it (trainer.accelerator=gpu
for lightdl, .to("cuda") for the plain loop); without a GPU those rows say "skipped: no GPU".
Ratios are lightdl / plain: epoch time (median of the non-warm-up epochs) or, for the sweep, wall
time; 1.00 is parity, above 1 lightdl is slower. Peak memory is the case process's peak RSS
(lightdl and the plain loop share that process; the sweep's two sides are separate processes) and,
on the GPU, torch.cuda.max_memory_allocated of each side.

Run from the repository root, on an otherwise idle machine:

    .venv/bin/python benchmarks/run.py                    # everything; table -> benchmarks/results-cpu.md
    .venv/bin/python benchmarks/run.py --quick            # tiny sizes: checks the suite in about a minute
    .venv/bin/python benchmarks/run.py --cases mlp,cnn --device cpu --out /tmp/table.md
    .venv/bin/python benchmarks/run.py --case-args "cnn:--train-per-class 0 --rounds 2"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = ("startup", "mlp", "mlp_default", "cnn", "lstm", "sweep16")
ON_DEVICE = ("mlp", "mlp_default", "cnn", "lstm", "sweep16")  # cases with a CPU and a GPU variant
SCRIPTS = {
    "startup": "startup_time.py",
    "mlp": "epoch_overhead.py",
    "mlp_default": "epoch_overhead.py",
    "cnn": "cnn_throughput.py",
    "lstm": "lstm_throughput.py",
    "sweep16": "sweep_overhead.py",
}
FULL = {  # the measured sizes (each script's own defaults, apart from those named here)
    "startup": ["--help-runs", "5", "--first-step-runs", "3"],
    "mlp": ["--epochs", "4", "--rounds", "3"],
    "mlp_default": ["--epochs", "4", "--rounds", "3"],
    "cnn": ["--epochs", "3"],
    "lstm": ["--epochs", "3", "--rounds", "2"],
    "sweep16": ["--jobs", "16"],
}
QUICK = {  # seconds per case: to check the suite, not to quote
    "startup": ["--help-runs", "5", "--first-step-runs", "1"],
    "mlp": ["--epochs", "2", "--rounds", "1", "--set", "data.train_per_class=100"]
    + ["--set", "data.val_size=500"],
    "mlp_default": ["--epochs", "2", "--rounds", "1", "--set", "data.train_per_class=100"]
    + ["--set", "data.val_size=500"],
    "cnn": ["--epochs", "2", "--train-per-class", "20", "--set", "data.val_size=500"],
    "lstm": ["--epochs", "2", "--max-chars", "20000"],
    "sweep16": ["--jobs", "4"],
}


# lightdl settings a case runs with (named in its row). trainer.steps_per_call=16 runs 16 optimizer
# steps per Lightning training_step call: the same training step for step (tests/test_steps_per_call.py)
# with Lightning's fixed per-call cost (~0.6 ms here) paid once per 16 batches. mlp_default is the
# MLP case with the default trainer.steps_per_call=1, for comparison.
SETTINGS = {"mlp": ["trainer.steps_per_call=16"], "lstm": ["trainer.steps_per_call=16"]}


def machine() -> dict:
    """CPU model, cores, torch and Lightning versions, torch threads, GPU name."""
    import lightning
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "threads": torch.get_num_threads(),
        "gpu": gpu,
        "date": date.today().isoformat(),
    }


def run_case(name: str, device: str | None, args: list[str], logs: Path) -> dict:
    """Run one case script in a fresh process; its JSON, or {"error": ...} when it failed."""
    label = name if device is None else f"{name}-{device}"
    out = logs / f"{label}.json"
    command = [sys.executable, str(HERE / SCRIPTS[name]), *args, "--json", str(out)]
    if device is not None:
        command += ["--device", device]
    log = logs / f"{label}.log"
    print(f"running {label}: {shlex.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with log.open("w") as stream:
        done = subprocess.run(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not out.is_file():
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        print(f"  {label} failed ({done.returncode}); log: {log}", file=sys.stderr, flush=True)
        return {"error": f"failed (exit {done.returncode}): {tail[0][:120]}"}
    print(f"  {label} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    return {**json.loads(out.read_text()), "case_seconds": seconds}


def _label(case: str, device: str) -> str:
    return f"{case} ({', '.join([device, *SETTINGS.get(case, [])])})"


def _mib(value: float) -> str:
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def row(label: str, result: dict) -> str:
    """One markdown table row for a case's JSON (or its error / skip note)."""
    if "skipped" in result or "error" in result:
        return f"| {label} | {result.get('skipped') or result['error']} | | | | |"
    ours, theirs = result["lightdl"], result["plain"]
    if result["case"] == "sweep":
        jobs = result["jobs"]
        return (
            f"| {label.removesuffix(')')}, {jobs} jobs) | {ours['wall_s']:.2f} s | {theirs['wall_s']:.2f} s "
            f"| {result['ratio']:.2f} | {60 * jobs / ours['wall_s']:.1f}, "
            f"{60 * jobs / theirs['wall_s']:.1f} jobs/min "
            f"| RSS {_mib(ours['peak_rss_mb'])}, {_mib(theirs['peak_rss_mb'])} |"
        )
    memory = f"RSS {_mib(result['peak_rss_mb'])}"
    if "gpu_peak_mb" in ours:
        memory += f"; GPU {_mib(ours['gpu_peak_mb'])}, {_mib(theirs.get('gpu_peak_mb', 0))}"
    return (
        f"| {label} | {ours['epoch_s']:.3f} s/epoch | {theirs['epoch_s']:.3f} s/epoch "
        f"| {result['ratio']:.2f} | {_rate(ours['throughput'])}, {_rate(theirs['throughput'])} "
        f"{result['unit']}/s | {memory} |"
    )


def report(results: dict[str, dict], info: dict, quick: bool) -> str:
    """The markdown: machine, table, start-up lines, the sweep's overhead breakdown."""
    gpu = info["gpu"] or "no GPU"
    lines = [
        f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores, {gpu}; "
        f"Python {info['python']}, torch {info['torch']} ({info['threads']} threads), "
        f"Lightning {info['lightning']}." + (" --quick sizes: not for quoting." if quick else ""),
        "",
        "| case | lightdl | plain | ratio | throughput (lightdl, plain) | peak memory |",
        "|---|---|---|---|---|---|",
    ]
    lines += [row(label, result) for label, result in results.items() if label != "startup"]
    lines.append("")
    startup = results.get("startup")
    if startup and "error" not in startup:
        lines += [
            f"- `python -m lightdl --help`: {startup['help_s']:.2f} s "
            f"(median of {len(startup['help_runs'])})",
            f"- launch to the first optimizer step of the default run (`python -m lightdl`): "
            f"{startup['first_step_s']:.2f} s (median of {len(startup['first_step_runs'])})",
        ]
    elif startup:
        lines += [f"- start-up: {startup['error']}"]
    for label, result in results.items():
        if result.get("case") != "sweep":
            continue
        ours, theirs, setup = result["lightdl"], result["plain"], result["data_setup_s"]
        lines += [
            f"- {label}: per-job overhead (wall - sum of fit seconds) / {result['jobs']}: "
            f"lightdl {ours['per_job_overhead_s']:.2f} s, plain {theirs['per_job_overhead_s']:.2f} s. "
            f"lightdl's wall: start-up {ours['startup_s']:.2f} s; outside fit "
            f"{ours['first_job_outside_fit_s']:.2f} s in the first job (imports), "
            f"{ours['later_jobs_outside_fit_s']:.2f} s in each later one, "
            f"+ {ours['between_jobs_s']:.2f} s between jobs (steady per-job overhead "
            f"**{ours['steady_per_job_overhead_s']:.2f} s**); {ours['end_s']:.2f} s at the end "
            f"(sweep table, report). Data set-up on a fresh DataModule: {setup[0]:.2f} s the "
            f"first time, {max(setup[1:]):.3f} s in each later job",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}"
    )
    parser.add_argument(
        "--device",
        choices=("all", "cpu", "cuda"),
        default="all",
        help="all = the CPU cases, then the GPU ones (skipped without a GPU)",
    )
    parser.add_argument(
        "--case-args",
        action="append",
        default=[],
        metavar="CASE:ARGS",
        help='more arguments for one case script, e.g. "cnn:--train-per-class 0"',
    )
    parser.add_argument(
        "--out",
        help="markdown file for the table (default: benchmarks/results-cpu.md, or -gpu.md when "
        "GPU cases ran; none with --quick); a .json of every case's figures goes beside it",
    )
    parser.add_argument("--logs", help="folder for each case's log and JSON (default: a temp dir)")
    args = parser.parse_args()

    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)}; choose from {', '.join(CASES)}")
    extra: dict[str, list[str]] = {}
    for item in args.case_args:
        name, _, rest = item.partition(":")
        if name not in CASES:
            parser.error(f"--case-args {item!r}: start with a case name ({', '.join(CASES)}):")
        extra.setdefault(name, []).extend(shlex.split(rest))

    info = machine()
    devices = {"all": ["cpu", "cuda"], "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]
    plan: list[tuple[str, str, str | None]] = []  # (row label, case, device)
    if "startup" in chosen:
        plan.append(("startup", "startup", None))
    for device in devices:
        plan += [(_label(c, device), c, device) for c in chosen if c in ON_DEVICE]
    sizes = QUICK if args.quick else FULL
    logs = Path(args.logs or tempfile.mkdtemp(prefix="lightdl-bench-"))
    logs.mkdir(parents=True, exist_ok=True)

    results: dict[str, dict] = {}
    started = time.perf_counter()
    for label, case, device in plan:
        if device == "cuda" and info["gpu"] is None:
            results[label] = {"skipped": "skipped: no GPU"}
            continue
        settings = [arg for item in SETTINGS.get(case, []) for arg in ("--set", item)]
        results[label] = run_case(case, device, sizes[case] + settings + extra.get(case, []), logs)
    print(f"suite done in {time.perf_counter() - started:.0f} s; logs in {logs}", file=sys.stderr)

    text = report(results, info, args.quick)
    print(text)
    out = args.out
    if out is None and not args.quick:
        ran_gpu = any(d == "cuda" and "lightdl" in results[lb] for lb, _, d in plan)
        out = str(HERE / f"results-{'gpu' if ran_gpu else 'cpu'}.md")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
        Path(out).with_suffix(".json").write_text(
            json.dumps({"machine": info, "quick": args.quick, "results": results}, indent=2)
        )
        print(f"written: {out} (and {Path(out).with_suffix('.json').name})", file=sys.stderr)


if __name__ == "__main__":
    main()
