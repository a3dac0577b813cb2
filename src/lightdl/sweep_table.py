"""The comparison table of a multirun: one row per job (overrides, status, final metrics).

A Hydra callback writes <sweep dir>/summary.csv and summary.md when the multirun ends and sets the
process exit code: 1 when any job failed, else 0 (a diverged job is a result, not a failure).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from lightdl.artifacts import write_atomic

exit_code = 0
FIRST = ["job", "overrides", "status", "epochs", "best_epoch"]
LAST = ["why", "fit_seconds", "wall_seconds", "run_dir"]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One flat row per job folder holding a summary.json, in job order."""
    rows = []
    for summary in sweep_dir.glob("*/summary.json"):
        data = json.loads(summary.read_text())
        metrics = data.get("metrics", {})
        row = {
            "job": summary.parent.name,
            "overrides": " ".join(data.get("overrides", [])),
            "status": data.get("status"),
            "epochs": data.get("epochs"),
            "best_epoch": (data.get("best") or {}).get("epoch"),
            **{k: v for k, v in sorted(metrics.items())},
            "why": data.get("error") or data.get("reason"),
            "fit_seconds": data.get("fit_seconds"),
            "wall_seconds": data.get("wall_seconds"),
            "run_dir": str(summary.parent),
        }
        train_acc = metrics.get("train/eval_acc", metrics.get("train/acc"))
        if train_acc is not None and "val/acc" in metrics:  # the overfitting gap, both in eval mode
            row["gap/train_minus_val_acc"] = train_acc - metrics["val/acc"]
        rows.append(row)
    return sorted(rows, key=lambda r: (len(r["job"]), r["job"]))


def _natural(key: str) -> list:
    """Sort key with numbers compared as numbers: layer_2 before layer_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def render(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(CSV text, Markdown text) of the rows with a shared column order."""
    metric_keys = sorted({k for r in rows for k in r} - set(FIRST) - set(LAST), key=_natural)
    columns = FIRST + metric_keys + LAST
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)

    def cell(value: Any) -> str:
        if isinstance(value, float):  # 4 significant digits: 6.2e-06 must not show as 0.0000
            return f"{value:.4g}"
        return "" if value is None else str(value).replace("|", "\\|")

    shown = [c for c in columns if c != "run_dir"]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in shown) + " |" for r in rows]
    return buffer.getvalue(), "\n".join(lines) + "\n"


def write_table(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = collect(sweep_dir)
    csv_text, md_text = render(rows)
    write_atomic(sweep_dir / "summary.csv", csv_text)
    write_atomic(sweep_dir / "summary.md", md_text)
    return rows


class SweepTable(Callback):
    """Hydra callback: write the sweep's comparison table when a multirun ends."""

    def on_multirun_end(self, config, **kwargs) -> None:
        global exit_code
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_table(sweep_dir)
        print(f"\nsweep: {len(rows)} jobs; table: {sweep_dir / 'summary.md'}\n")
        print((sweep_dir / "summary.md").read_text())
        exit_code = 1 if any(r["status"] == "failed" for r in rows) else 0
