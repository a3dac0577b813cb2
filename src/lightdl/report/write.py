"""write_report(dir): gather the runs, draw the figures, write <dir>/report/index.html and its PNGs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from lightdl.artifacts import write_atomic
from lightdl.report import html, plots
from lightdl.report.collect import load_jobs, monitor_of, swept_keys
from lightdl.report.study import study_sections

NO_STUDY = (
    "This is not a search study (no Optuna storage *.db or best_params.yaml in the folder), "
    "so the optimization history and parameter importances are skipped."
)


def write_report(sweep_dir: str | Path) -> Path:
    """Write the comparison report of a sweep (or of any folder of runs); returns index.html's path.

    Raises lightdl.errors.ConfigError when `sweep_dir` is not a folder or holds no run.
    """
    root = Path(sweep_dir)
    jobs, columns = load_jobs(root)
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # figures of metrics or keys a re-made report no longer has
        old.unlink()
    keys = swept_keys(jobs)
    monitor, mode = monitor_of(jobs)
    sections = [("overview", _overview(jobs, keys, monitor, mode))]
    sections.append(
        (
            "comparison table",
            html.paragraph("One row per run; click a column header to sort by it.")
            + html.table(jobs, columns),
        )
    )
    curves = plots.learning_curves(jobs, keys, out)
    sections.append(
        (
            "learning curves",
            _figures(out, [(f"{m} per epoch", f) for m, f in curves])
            or html.paragraph("No run has a metrics.csv (the csv logger writes it: logger=csv)."),
        )
    )
    sections += _objective_sections(jobs, keys, monitor, mode, out)
    studies = study_sections(root, out)
    for study in studies:
        body = "".join(html.paragraph(s) for s in study.sentences)
        if study.preformatted:
            body += f"<p>best_params.yaml:</p><pre>{html.escape(study.preformatted)}</pre>"
        sections.append((study.title, body + _figures(out, study.images)))
    if not studies:
        sections.append(("search study", html.paragraph(NO_STUDY)))
    index = out / "index.html"
    write_atomic(index, html.page(f"lightdl report: {root}", sections))
    return index


def _overview(jobs, keys, monitor, mode) -> str:
    statuses = Counter(j.status for j in jobs)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    text = [f"{len(jobs)} runs: {counts}."]
    text.append(f"Swept: {', '.join(keys)}." if keys else "No override differs between the runs.")
    scored = [j for j in jobs if j.objective is not None]
    if monitor and scored:
        pick = min if mode == "min" else max
        best = pick(scored, key=lambda j: j.objective)
        text.append(
            f"Objective: the best {monitor} of each run ({mode}imize); "
            f"best run {best.name} with {best.objective:.4g}."
        )
    return "".join(html.paragraph(t) for t in text)


def _objective_sections(jobs, keys, monitor, mode, out: Path) -> list[tuple[str, str]]:
    if not keys:
        skip = html.paragraph("Nothing was swept, so there is no hyperparameter to plot against.")
        return [("objective vs hyperparameters", skip), ("parallel coordinates", skip)]
    if not monitor or all(j.objective is None for j in jobs):
        skip = html.paragraph("No run has a value of its `monitor` metric to plot.")
        return [("objective vs hyperparameters", skip), ("parallel coordinates", skip)]
    each = plots.objective_vs_params(jobs, keys, monitor, out)
    parallel = plots.parallel_coordinates(jobs, keys, monitor, mode, out)
    return [
        (
            "objective vs hyperparameters",
            _figures(out, [(f"best {monitor} vs {k}", f) for k, f in each]),
        ),
        (
            "parallel coordinates",
            _figures(out, [("swept hyperparameters and objective", parallel)]),
        ),
    ]


def _figures(out: Path, images: list[tuple[str, str]]) -> str:
    return "\n".join(html.figure(out, name, caption) for caption, name in images)
