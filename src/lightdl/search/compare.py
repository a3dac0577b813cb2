"""The comparison of search methods (hydra.sweeper.compare): for each arm (sampler) and seed, the best
score its study found with the same number of trials, and how many distinct values of each searched
parameter it tried. A grid of n trials over k parameters tries only n^(1/k) values of each, random
search n of every one: when only some parameters matter, random gets more shots at those.

Written to <sweep dir>/<arms joined by _vs_>.csv (one row per study) and .md (one row per arm: best
per seed, mean ± sample std over seeds, wins) and printed at the end of the sweep.
"""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import Any

from lightdl.artifacts import write_atomic
from lightdl.search import space as search_space

FINISHED = (
    "COMPLETE",
    "PRUNED",
    "FAIL",
)  # trials that spent budget (RUNNING ones were interrupted)


def study_row(arm: Any, study: Any, space: dict[str, Any]) -> dict[str, Any]:
    """One study: its trials, best value and trial, and the distinct values tried per parameter."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = study.best_trial if complete else None
    overrides = []
    if best is not None:
        for key, sampled in best.params.items():
            overrides.append((space.get(key) or search_space.Param(key, None)).override(sampled))
    row: dict[str, Any] = {
        "arm": arm.name,
        "seed": arm.seed,
        "study": arm.study,
        "trials": len(trials),
        "complete": len(complete),
        "best": best.value if best else None,
        "best_trial": best.number if best else None,
        "best_overrides": " ".join(overrides),
    }
    for key in space:
        row[f"distinct {key}"] = len({t.params[key] for t in trials if key in t.params})
    return row


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _spread(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else f"{min(values)}-{max(values)}"


def render_md(rows: list[dict[str, Any]], objective: str, direction: str, n_trials: int) -> str:
    """One line per arm: trials per study, best per seed, mean ± std, seeds won, distinct values."""
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    keys = [c.removeprefix("distinct ") for c in rows[0] if c.startswith("distinct ")]
    best = {(r["arm"], r["seed"]): r["best"] for r in rows}
    pick = max if direction == "maximize" else min
    winners = {}
    for seed in seeds:
        found = [best[a, seed] for a in arms if best.get((a, seed)) is not None]
        winners[seed] = pick(found) if found else None
    head = ["arm", "trials", *(f"seed {s}" for s in seeds), "mean ± std", "wins"]
    head += [f"distinct {k}" for k in keys]
    lines = [
        f"## {' vs '.join(arms)}: best {objective} ({direction}) per study, same budget of "
        f"{n_trials} trials",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for arm in arms:
        mine = [r for r in rows if r["arm"] == arm]
        values = [r["best"] for r in mine if r["best"] is not None]
        mean = statistics.fmean(values) if values else None
        spread = f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else ""
        wins = sum(best.get((arm, s)) is not None and best[arm, s] == winners[s] for s in seeds)
        cells = [arm, _spread([r["trials"] for r in mine])]
        cells += [_cell(best.get((arm, s))) for s in seeds]
        cells += [f"{_cell(mean)}{spread}", f"{wins}/{len(seeds)}"]
        cells += [_spread([r[f"distinct {k}"] for r in mine]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "wins: seeds where the arm's best is the best of all arms (ties count for each); "
        "distinct: values of each parameter its trials tried.",
    ]
    return "\n".join(lines) + "\n"


def write_comparison(
    ran: list[tuple[Any, Any]],
    space: dict[str, Any],
    sweep_dir: Path,
    objective: str,
    n_trials: int,
) -> str:
    """<arms>.csv and <arms>.md in the sweep dir from (Arm, study) pairs; returns the Markdown."""
    rows = [study_row(arm, study, space) for arm, study in ran]
    stem = "_vs_".join(dict.fromkeys(r["arm"] for r in rows))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(sweep_dir / f"{stem}.csv", buffer.getvalue())
    direction = ran[0][1].direction.name.lower()
    md = render_md(rows, objective, direction, n_trials)
    write_atomic(sweep_dir / f"{stem}.md", md)
    return md
