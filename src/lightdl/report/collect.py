"""What the report reads from disk: each run's summary, overrides, config and CSV learning curves.

Everything comes from files a run leaves behind (summary.json, .hydra/*.yaml, metrics.csv), so a
report can be made offline, long after the sweep, from a copied folder.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lightdl import sweep_table
from lightdl.errors import ConfigError

MISSING = "(default)"  # shown for a swept key that a run did not override


@dataclass
class Job:
    """One run: its sweep-table row plus what the plots need."""

    name: str
    run_dir: Path
    row: dict[str, Any]
    overrides: dict[str, str]
    monitor: str | None = None
    monitor_mode: str = "min"
    objective: float | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)  # Hydra group -> option chosen
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.row.get("status") or "unknown")


def find_runs(root: Path) -> list[Path]:
    """Run folders under `root`: the folder itself, its children (a sweep), or any depth (a runs dir)."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory; give a sweep or runs folder.")
    if (root / "summary.json").is_file():
        return [root]
    found = [p.parent for p in root.glob("*/summary.json")]
    if not found:
        found = [
            p.parent
            for p in root.rglob("summary.json")
            if "report" not in p.relative_to(root).parts
        ]
    if not found:
        raise ConfigError(
            f"no run found in {root} (no */summary.json); give a sweep or runs folder."
        )
    return sorted(found, key=lambda p: _natural(str(p.relative_to(root)) or p.name))


def load_jobs(root: Path) -> tuple[list[Job], list[str]]:
    """(jobs, table columns): the rows and column order of lightdl's sweep table, one Job per run."""
    dirs = find_runs(root)
    wanted = {d.resolve() for d in dirs}
    rows: dict[Path, dict[str, Any]] = {}
    for parent in sorted({d.parent for d in dirs}):
        for row in sweep_table.collect(parent):
            run_dir = Path(row["run_dir"]).resolve()
            if run_dir in wanted:
                rows[run_dir] = row
    ordered = [rows[d.resolve()] for d in dirs if d.resolve() in rows]
    csv_text, _ = sweep_table.render(ordered)
    columns = [c for c in next(csv.reader([csv_text.splitlines()[0]])) if c != "run_dir"]
    jobs = []
    for run_dir in dirs:
        row = rows.get(run_dir.resolve())
        if row is None:
            continue
        name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
        row["job"] = name
        jobs.append(_job(name, run_dir, row))
    return jobs, columns


def _job(name: str, run_dir: Path, row: dict[str, Any]) -> Job:
    summary = _read_json(run_dir / "summary.json")
    raw = summary.get("overrides") or _read_yaml(run_dir / ".hydra" / "overrides.yaml") or []
    config = _read_yaml(run_dir / ".hydra" / "config.yaml") or {}
    hydra = _read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    job = Job(
        name=name,
        run_dir=run_dir,
        row=row,
        overrides=parse_overrides(raw),
        monitor=config.get("monitor"),
        monitor_mode=str(config.get("monitor_mode") or "min"),
        choices={
            str(k): str(v)
            for k, v in ((hydra.get("hydra") or {}).get("runtime") or {}).get("choices", {}).items()
        },
        config=config,
    )
    job.objective = _objective(summary, job.monitor)
    job.curves = read_curves(run_dir)
    return job


def parse_overrides(raw: list[str]) -> dict[str, str]:
    """['optimizer.lr=0.01', '+x=1'] -> {'optimizer.lr': '0.01', 'x': '1'} (deletions `~k` left out)."""
    found = {}
    for item in raw:
        key, sep, value = str(item).partition("=")
        if sep and not key.startswith("~"):
            found[key.lstrip("+")] = value
    return found


def _objective(summary: dict[str, Any], monitor: str | None) -> float | None:
    """The run's best value of `monitor` (what the checkpoint kept), else its last value."""
    if not monitor:
        return None
    best = summary.get("best") or {}
    value = best.get("value") if best.get("metric") == monitor else None
    if value is None:
        value = (summary.get("metrics") or {}).get(monitor)
    return _finite(value)


def read_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(epoch, value)] from the CSV logger's metrics.csv (the last value of each epoch)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        path = next(iter(sorted(run_dir.rglob("metrics.csv"))), path)
    if not path.is_file():
        return {}
    per_epoch: dict[str, dict[int, float]] = {}
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            epoch = _finite(record.get("epoch"))
            if epoch is None:
                continue
            for key, text in record.items():
                if key in ("epoch", "step") or key is None:
                    continue
                value = _finite(text)
                if value is not None:
                    per_epoch.setdefault(key, {})[int(epoch)] = value
    return {
        k: sorted(v.items()) for k, v in sorted(per_epoch.items(), key=lambda i: _natural(i[0]))
    }


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between runs (the sweep's hyperparameters), in override order."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    keys = [k for k in keys if not k.startswith("hydra.")]  # e.g. a search's trial number
    return [k for k in keys if len({value_of(j, k) for j in jobs}) > 1]


def value_of(job: Job, key: str) -> str:
    """The run's value of an override key: its own override, else its Hydra group choice or config."""
    if key in job.overrides:
        return job.overrides[key]
    if key in job.choices:
        return job.choices[key]
    node: Any = job.config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return str(node) if not isinstance(node, dict | list) else MISSING


def monitor_of(jobs: list[Job]) -> tuple[str | None, str]:
    """The objective shared by most runs: (monitor, monitor_mode)."""
    counts = Counter((j.monitor, j.monitor_mode) for j in jobs if j.monitor)
    return counts.most_common(1)[0][0] if counts else (None, "min")


def label(job: Job, keys: list[str]) -> str:
    """Legend text of a run: its swept overrides (all overrides when nothing is swept)."""
    shown = [f"{k}={value_of(job, k)}" for k in keys] or [
        f"{k}={v}" for k, v in job.overrides.items() if not k.startswith("hydra.")
    ]
    return f"{job.name}: {' '.join(shown)}" if shown else job.name


def as_number(text: str) -> float | None:
    return _finite(text)


def _finite(value: Any) -> float | None:
    """A finite float, or None for missing, text, NaN and infinities (a diverged run's last values)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _natural(key: str) -> list:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", key) if p]


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
