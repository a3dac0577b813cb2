"""curves.png: a finished run's loss and accuracy per epoch, train beside validation.

Drawn from the History rows (one per epoch) on a matplotlib Figure with the Agg canvas; matplotlib is
imported inside the function so start-up stays fast. Where the diagnosis found overfitting, a dotted
line marks the epoch it opened.
"""

from __future__ import annotations

import math
from pathlib import Path

PANELS = (  # (title, does a metric name belong in it)
    ("loss", lambda k: k.split("/")[-1].endswith("loss")),
    ("accuracy", lambda k: k.split("/")[-1] in ("acc", "eval_acc")),
)


def write_curves(
    epochs: list[dict[str, float]], path: Path, opened: int | None = None
) -> Path | None:
    """Write the plot of every train/ and val/ loss and accuracy in `epochs`; None if there is none."""
    keys = sorted({k for r in epochs for k in r if k.split("/")[0] in ("train", "val")})
    panels = [(title, [k for k in keys if fits(k)]) for title, fits in PANELS]
    panels = [(title, shown) for title, shown in panels if shown]
    if not panels:
        return None
    from matplotlib.figure import Figure

    from lightdl.report.plots import save_png

    fig = Figure(figsize=(5.0 * len(panels), 3.8), dpi=90)
    # Fixed margins: matplotlib's constrained layout drew the figure twice, ~0.15 s of a sweep
    # job's ~0.6 s overhead (benchmarks/README.md).
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.92, wspace=0.28)
    for ax, (title, shown) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True
    ):
        for key in shown:
            points = [(r["epoch"], r[key]) for r in epochs if key in r and math.isfinite(r[key])]
            if points:
                xs, ys = zip(*points, strict=True)
                style = "--" if key.startswith("train/") else "-"
                ax.plot(xs, ys, style, marker=".", label=key)
        if opened is not None:
            ax.axvline(
                opened, color="grey", linestyle=":", label=f"overfitting from epoch {opened}"
            )
        ax.set(xlabel="epoch", title=title)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_png(fig, path)
    return path
