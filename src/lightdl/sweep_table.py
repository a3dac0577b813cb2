"""The comparison table of a multirun: one row per job (overrides, status, final metrics).

A Hydra callback writes <sweep dir>/summary.csv and summary.md when the multirun ends and sets the
process exit code: 1 when any job failed, else 0 (a diverged job is a result, not a failure).
When the sweep varies `seed`, the jobs are also aggregated per configuration (the overrides other
than seed): summary_by_config.csv and a second table in summary.md give n and the mean, sample
standard deviation, min and max of every numeric column over the seeds that completed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from lightdl.artifacts import write_atomic

exit_code = 0
FIRST = ["job", "overrides", "status", "epochs", "best_epoch"]
LAST = ["why", "fit_seconds", "wall_seconds", "run_dir"]
COUNTED = ("completed", "stopped_early")  # statuses whose metrics enter the per-configuration stats


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One flat row per job folder holding a summary.json, in job order."""
    return [row for row, _ in _jobs(sweep_dir)]


def _jobs(sweep_dir: Path) -> list[tuple[dict[str, Any], list[str]]]:
    """(row, override list) per job, in job order."""
    jobs = []
    for summary in sweep_dir.glob("*/summary.json"):
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError) as exc:  # a foreign or damaged file costs only its row
            print(f"lightdl: warning: skipping {summary}: {exc}")
            continue
        if not isinstance(data, dict):
            print(f"lightdl: warning: skipping {summary}: not a lightdl summary")
            continue
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
        jobs.append((row, list(data.get("overrides", []))))
    return sorted(jobs, key=lambda j: (len(j[0]["job"]), j[0]["job"]))


def _natural(key: str) -> list:
    """Sort key with numbers compared as numbers: layer_2 before layer_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def render(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(CSV text, Markdown text) of the rows with a shared column order."""
    columns = _columns(rows)
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


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def by_config(rows: list[dict[str, Any]], overrides: list[list[str]]) -> list[dict[str, Any]]:
    """One row per configuration when the sweep varies `seed`, else []: `config` (the overrides
    that set it apart, seed excluded), the seeds of its jobs, n (completed or stopped early: the
    jobs in the stats), n_failed (failed or diverged; pruned trials count in neither), and for each
    numeric column its mean, sample std (n-1; empty when n < 2), min and max."""
    seeds = [dict(map(_split, job)).get("seed") for job in overrides]
    if len(set(seeds)) < 2:
        return []
    rest = [[o for o in job if _split(o)[0] != "seed"] for job in overrides]
    shared = set.intersection(*(set(job) for job in rest))
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, job in enumerate(rest):
        groups.setdefault(tuple(job), []).append(index)
    numeric = [c for c in _columns(rows) if any(_is_number(r.get(c)) for r in rows)]
    table = []
    if all(len(members) < 2 for members in groups.values()):
        return []  # every configuration ran once (a search): nothing to aggregate
    for key, members in groups.items():
        counted = [rows[i] for i in members if rows[i]["status"] in COUNTED]
        row: dict[str, Any] = {
            "config": " ".join(o for o in key if o not in shared) or " ".join(key),
            "seeds": " ".join(str(seeds[i]) for i in members),
            "n": len(counted),
            "n_failed": sum(rows[i]["status"] in ("failed", "diverged") for i in members),
        }
        for column in numeric:
            values = [r[column] for r in counted if _is_number(r.get(column))]
            row[f"{column}_mean"] = statistics.fmean(values) if values else None
            row[f"{column}_std"] = statistics.stdev(values) if len(values) > 1 else None
            row[f"{column}_min"] = min(values) if values else None
            row[f"{column}_max"] = max(values) if values else None
        table.append(row)
    return table


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    metric_keys = sorted({k for r in rows for k in r} - set(FIRST) - set(LAST), key=_natural)
    return FIRST + metric_keys + LAST


def render_by_config(table: list[dict[str, Any]]) -> tuple[str, str]:
    """(CSV text with every statistic, Markdown section with mean ± std) of by_config's rows."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    measured = [c[: -len("_mean")] for c in table[0] if c.endswith("_mean")]

    def cell(row: dict[str, Any], column: str) -> str:
        mean, std = row[f"{column}_mean"], row[f"{column}_std"]
        if mean is None:
            return ""
        return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"

    head = ["config", "seeds", "n", "n_failed", *measured]
    lines = [
        "## By configuration: mean ± std over seeds (failed, diverged and pruned jobs left out)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in table:
        cells = [str(row[c]).replace("|", "\\|") for c in head[:4]]
        lines.append("| " + " | ".join(cells + [cell(row, c) for c in measured]) + " |")
    return buffer.getvalue(), "\n".join(lines) + "\n"


def write_table(sweep_dir: Path) -> list[dict[str, Any]]:
    """summary.csv and summary.md, plus summary_by_config.csv and its section when seeds vary."""
    jobs = _jobs(sweep_dir)
    rows = [row for row, _ in jobs]
    csv_text, md_text = render(rows)
    table = by_config(rows, [overrides for _, overrides in jobs])
    if table:
        by_config_csv, by_config_md = render_by_config(table)
        write_atomic(sweep_dir / "summary_by_config.csv", by_config_csv)
        md_text += "\n" + by_config_md
    write_atomic(sweep_dir / "summary.csv", csv_text)
    write_atomic(sweep_dir / "summary.md", md_text)
    return rows


class SweepTable(Callback):
    """Hydra callback: write the sweep's comparison table when a multirun ends, and (with
    `report`) the HTML comparison report beside it (lightdl.report)."""

    def __init__(self, report: bool = True) -> None:
        self.report = report

    def on_multirun_end(self, config, **kwargs) -> None:
        global exit_code
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_table(sweep_dir)
        print(f"\nsweep: {len(rows)} jobs; table: {sweep_dir / 'summary.md'}\n")
        print((sweep_dir / "summary.md").read_text())
        if self.report:
            try:  # the report is a convenience: its failure must never fail the sweep
                from lightdl.report import write_report

                print(f"report: {write_report(sweep_dir)}")
            except Exception as exc:  # noqa: BLE001
                print(f"lightdl: warning: no report ({type(exc).__name__}: {exc})")
        exit_code = 1 if any(r["status"] == "failed" for r in rows) else 0
