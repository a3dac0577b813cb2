"""The report's figures as PNG files: learning curves, objective vs each hyperparameter, parallel coordinates.

Drawn on matplotlib Figure objects with the Agg canvas (no pyplot, no display, no global state), and
matplotlib is imported only here, inside the functions, so `python -m lightdl --help` stays fast.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from lightdl.report.collect import MISSING, Job, as_number, label, value_of

MAX_LEGEND = 16  # beyond this many runs a legend hides the plot: colours alone, table for details
GOOD = ("completed", "stopped_early")
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1}
MARKERS = {"completed": "o", "stopped_early": "o", "pruned": "x", "diverged": "^", "failed": "s"}


def filename(prefix: str, name: str) -> str:
    """'curve', 'val/loss' -> 'curve_val_loss.png' (safe in any file system and URL)."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9.-]+', '_', name).strip('_')}.png"


def learning_curves(jobs: list[Job], keys: list[str], out: Path) -> list[tuple[str, str]]:
    """One PNG per logged metric with every run's curve against epoch; returns [(metric, file)]."""
    metrics: list[str] = []
    for job in jobs:
        metrics += [m for m in job.curves if m not in metrics]
    made = []
    for metric in metrics:
        fig, ax = new_figure()
        values = []
        for i, job in enumerate(jobs):
            points = job.curves.get(metric)
            if not points:
                continue
            epochs, ys = zip(*points, strict=True)
            values += ys
            ax.plot(
                epochs,
                ys,
                marker=".",
                color=_colour(i),
                linestyle="-" if job.status in GOOD else "--",
                label=_legend(job, keys),
            )
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if _spans_decades(values):
            ax.set_yscale("log")
        finish(ax, len(jobs))
        made.append((metric, save_png(fig, out / filename("curve", metric))))
    return made


def objective_vs_params(
    jobs: list[Job], keys: list[str], monitor: str, out: Path
) -> list[tuple[str, str]]:
    """One PNG per swept key: each run's objective at its value of the key; returns [(key, file)]."""
    made = []
    for key in keys:
        axis = Axis(key, [value_of(j, key) for j in jobs])
        fig, ax = new_figure()
        for status in sorted({j.status for j in jobs}):
            shown = [j for j in jobs if j.status == status and j.objective is not None]
            if shown:
                ax.scatter(
                    [axis.x(value_of(j, key)) for j in shown],
                    [j.objective for j in shown],
                    marker=MARKERS.get(status, "D"),
                    label=status,
                    s=36,
                    alpha=0.8,
                )
        missing = sum(j.objective is None for j in jobs)
        note = f" ({missing} run(s) without a value)" if missing else ""
        ax.set(xlabel=key, ylabel=f"best {monitor}", title=f"best {monitor} vs {key}{note}")
        axis.apply(ax)
        finish(ax)
        made.append((key, save_png(fig, out / filename("objective_vs", key))))
    return made


def parallel_coordinates(
    jobs: list[Job], keys: list[str], monitor: str, mode: str, out: Path
) -> str | None:
    """One PNG: an axis per swept key and one for the objective, a line per run coloured by objective."""
    from matplotlib import cm, colormaps, colors

    if not keys:
        return None
    axes = [Axis(k, [value_of(j, k) for j in jobs]) for k in keys]
    objectives = [j.objective for j in jobs if j.objective is not None]
    target = Axis(f"best {monitor}", [str(v) for v in objectives], numeric_only=True)
    fig, ax = new_figure(width=max(6.0, 1.6 * (len(keys) + 1)))
    cmap = colormaps["viridis_r" if mode == "min" else "viridis"]  # the best run is yellow
    norm = colors.Normalize(min(objectives, default=0.0), max(objectives, default=1.0))
    for job in jobs:
        ys = [a.position(value_of(job, a.name)) for a in axes]
        if job.objective is None:  # failed before any validation: its parameters, greyed
            ax.plot(range(len(ys)), ys, color="grey", linestyle=":", alpha=0.7)
            continue
        ys.append(target.position(str(job.objective)))
        style = "-" if job.status in GOOD else "--"
        ax.plot(range(len(ys)), ys, color=cmap(norm(job.objective)), linestyle=style, alpha=0.85)
    for i, a in enumerate([*axes, target]):
        ax.axvline(i, color="black", linewidth=0.8)
        for position, text in a.ticks():
            ax.text(i - 0.03, position, text, ha="right", va="center", fontsize=7, bbox=LABEL_BOX)
    ax.set_xticks(range(len(axes) + 1), [a.name for a in [*axes, target]], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.6, len(axes) + 0.1)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"best {monitor} across the swept hyperparameters")
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"best {monitor}")
    return save_png(fig, out / "parallel_coordinates.png")


class Axis:
    """A hyperparameter's values laid on an axis: numbers (log when they span >= 2 decades) or categories."""

    def __init__(self, name: str, values: list[str], numeric_only: bool = False) -> None:
        self.name, self.continuous = name, numeric_only  # an outcome, not a grid: ticks at ends
        numbers = [as_number(v) for v in values]
        self.numeric = bool(values) and (numeric_only or all(n is not None for n in numbers))
        if self.numeric:
            self.numbers = sorted({n for n in numbers if n is not None}) or [0.0]
            self.log = _spans_decades(self.numbers)
        else:
            self.categories = sorted(set(values), key=lambda v: (v != MISSING, _sortable(v)))

    def x(self, value: str) -> Any:
        """Data coordinate for the metric-vs-parameter plots."""
        return as_number(value) if self.numeric else self.categories.index(value)

    def apply(self, ax) -> None:
        if not self.numeric:
            ax.set_xticks(range(len(self.categories)), self.categories)
            ax.set_xlim(-0.5, len(self.categories) - 0.5)
        elif self.log:
            ax.set_xscale("log")

    def position(self, value: str) -> float:
        """Where `value` sits on a 0..1 parallel-coordinates axis."""
        if not self.numeric:
            n = len(self.categories)
            return self.categories.index(value) / (n - 1) if n > 1 else 0.5
        number = as_number(value)
        if number is None:
            return 0.5
        low, high, number = (self._scale(v) for v in (self.numbers[0], self.numbers[-1], number))
        return (number - low) / (high - low) if high > low else 0.5

    def ticks(self) -> list[tuple[float, str]]:
        if not self.numeric:
            return [(self.position(c), c) for c in self.categories]
        low, high = self.numbers[0], self.numbers[-1]
        few = len(self.numbers) <= 6 and not self.continuous
        shown = self.numbers if few else sorted({low, (low + high) / 2, high})
        return [(self.position(str(v)), f"{v:.3g}") for v in shown]

    def _scale(self, number: float) -> float:
        return math.log10(number) if self.log else number


def _sortable(value: str) -> tuple:
    number = as_number(value)
    return (0, number, "") if number is not None else (1, 0.0, value)


def _spans_decades(values) -> bool:
    """True when all values are positive and the largest is at least 100 times the smallest."""
    values = [v for v in values if v is not None]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 100


def _legend(job: Job, keys: list[str]) -> str:
    text = label(job, keys)
    return text if job.status in GOOD else f"{text} ({job.status})"


def _colour(i: int) -> str:
    from matplotlib import colormaps

    palette = colormaps["tab10" if i < 10 else "tab20"]
    return palette(i % palette.N)


def new_figure(width: float = 7.0, height: float = 4.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90, layout="constrained")
    return fig, fig.subplots()


def finish(ax, runs: int = 0) -> None:
    ax.grid(alpha=0.3)
    if runs <= MAX_LEGEND and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def save_png(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path.name
