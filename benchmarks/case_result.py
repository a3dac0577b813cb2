"""What the lightdl-vs-plain benchmark scripts share: the --device/--set/--json options, peak
memory, and the one JSON layout run.py reads back (so it never parses their printed output).

JSON written with --json PATH:

    {"case": "mlp", "unit": "examples", "items": 55000, "device": "cpu", "threads": 2,
     "ratio": lightdl epoch_s / plain epoch_s,
     "lightdl": {"epoch_s": median, "val_s": median, "throughput": median items/s,
                 "epochs": [...], "val": [...], "gpu_peak_mb": ... (GPU only)},
     "plain": {... the same ...},
     "peak_rss_mb": peak resident memory of the whole process (both runs: they share it),
     "metrics": {...}, "settings": {...}}

Epoch lists hold the non-warm-up epochs of every round. Throughput = items / (epoch - validation):
the training pass and end-of-epoch work without the validation pass.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
from pathlib import Path

import torch


def add_options(parser: argparse.ArgumentParser) -> None:
    """--device, --json and --set."""
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where both run: auto = the GPU when there is one (lightdl gets trainer.accelerator)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra lightdl override that leaves the network alone (e.g. train_probe=0)",
    )


def resolve_device(
    parser: argparse.ArgumentParser, choice: str
) -> tuple[torch.device, tuple[str, ...]]:
    """(the device, the lightdl override that puts the Trainer on it)."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is available here")
    accelerator = "gpu" if choice == "cuda" else "cpu"
    return torch.device(choice), (f"trainer.accelerator={accelerator}",)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class GpuPeak:
    """torch.cuda.max_memory_allocated per side: reset before each run, read after it."""

    def __init__(self, device: torch.device) -> None:
        self.on = device.type == "cuda"
        self.peaks: dict[str, float] = {}

    def start(self) -> None:
        if self.on:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def stop(self, side: str) -> None:
        if self.on:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
            self.peaks[side] = max(self.peaks.get(side, 0.0), peak)


def _side(times: list[float], val: list[float], items: int) -> dict:
    return {
        "epoch_s": statistics.median(times),
        "val_s": statistics.median(val),
        "throughput": statistics.median(items / (t - v) for t, v in zip(times, val, strict=True)),
        "epochs": times,
        "val": val,
    }


def write(
    path: str | None,
    *,
    case: str,
    unit: str,
    items: int,
    device: torch.device,
    lightdl: tuple[list[float], list[float]],
    plain: tuple[list[float], list[float]],
    gpu: GpuPeak,
    metrics: dict,
    settings: dict,
) -> None:
    """Write the case's JSON to `path` (nothing when None); lightdl/plain are (epochs, val)."""
    if not path:
        return
    ours, theirs = _side(*lightdl, items), _side(*plain, items)
    for name, side in (("lightdl", ours), ("plain", theirs)):
        if name in gpu.peaks:
            side["gpu_peak_mb"] = gpu.peaks[name]
    result = {
        "case": case,
        "unit": unit,
        "items": items,
        "device": device.type,
        "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "ratio": ours["epoch_s"] / theirs["epoch_s"],
        "lightdl": ours,
        "plain": theirs,
        "peak_rss_mb": peak_rss_mb(),
        "metrics": metrics,
        "settings": settings,
    }
    Path(path).write_text(json.dumps(result, indent=2))
