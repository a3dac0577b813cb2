"""The search-study part of the report: optimization history and parameter importances of an Optuna study.

A folder is a search study when an Optuna SQLite storage is in it, beside it (`<folder>.db`, where the
hparams_search presets keep it) or named by its sweeper, or when it has a best_params.yaml. Optuna is
imported only then (it is slow to import). Plots use plain matplotlib: Optuna's own need plotly.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lightdl.report.plots import filename, finish, new_figure, save_png


@dataclass
class Section:
    """What the HTML page shows for one study: a heading, sentences and image files."""

    title: str
    sentences: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (caption, file name)
    preformatted: str = ""


def study_sections(root: Path, out: Path) -> list[Section]:
    """One Section per Optuna study found for the sweep in `root`; empty when it is not a search study."""
    storages, name, best_text = _find(root)
    if not storages and not best_text:
        return []
    found: list[Section] = []
    try:
        import optuna
    except ImportError:
        return [Section("search study", ["Optuna is not installed, so the study is not plotted."])]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for db in storages:
        url = f"sqlite:///{db}"
        try:  # a study that cannot be read costs its own section, not the report
            names = optuna.get_all_study_names(storage=url)
            # a comparison (hydra.sweeper.compare) stores <name>_<arm>_s<seed> beside each other
            ours = [n for n in names if name in (None, n) or n.startswith(f"{name}_")]
            for study_name in ours:
                study = optuna.load_study(study_name=study_name, storage=url)
                found.append(_section(study, f"{db.name}:{study_name}", out))
        except Exception as exc:
            found.append(Section(f"search study {db.name}", [f"Could not read it: {exc}"]))
    if not found:
        found.append(Section("search study", ["No Optuna study storage was found beside it."]))
    if best_text:
        found[0].preformatted = best_text
    return found


def _find(root: Path) -> tuple[list[Path], str | None, str]:
    """(SQLite files holding Optuna studies, the study's name if known, best_params.yaml text).

    Looked for: *.db in the folder; the sweeper's `storage` (from multirun.yaml, or a job's
    .hydra/hydra.yaml where lightdl's sweeper made it absolute); <folder>.db beside the folder, where
    the hparams_search presets keep it (studies/<name>/ and studies/<name>.db).
    """
    best = root / "best_params.yaml"
    best_text = best.read_text() if best.is_file() else ""
    record = _yaml(best) if best_text else None
    sweeper = _sweeper(root / "multirun.yaml")
    name = (record or {}).get("study") if isinstance(record, dict) else None
    name = name or sweeper.get("study_name")
    candidates = [*sorted(root.glob("*.db")), root.parent / f"{root.name}.db"]
    urls = [sweeper.get("storage")]
    urls += [_sweeper(p).get("storage") for p in sorted(root.glob("*/.hydra/hydra.yaml"))[:1]]
    for url in urls:
        if isinstance(url, str) and url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///")).expanduser()
            cwd = sweeper.get("cwd")
            candidates.append(Path(cwd) / path if cwd and not path.is_absolute() else path)
    found: dict[Path, Path] = {}
    for path in candidates:
        if path.is_file() and path.resolve() not in found and _is_optuna(path):
            found[path.resolve()] = path
    return list(found.values()), name, best_text


def _sweeper(path: Path) -> dict:
    """hydra.sweeper's study_name and storage (interpolations resolved) and hydra.runtime.cwd of a
    saved Hydra config; empty when missing or unresolvable."""
    from omegaconf import OmegaConf

    found = {}
    try:
        cfg = OmegaConf.load(path)
    except Exception:
        return found
    for key, node in (
        ("study_name", "hydra.sweeper.study_name"),
        ("storage", "hydra.sweeper.storage"),
        ("cwd", "hydra.runtime.cwd"),
    ):
        try:
            value = OmegaConf.select(cfg, node, default=None)
        except Exception:  # an interpolation needing Hydra's runtime resolvers
            value = None
        if isinstance(value, str) and value:
            found[key] = value
    return found


def _is_optuna(path: Path) -> bool:
    """True for an SQLite file with Optuna's `studies` table (opened read-only: never alters a file)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE name='studies'").fetchone()
        return found is not None
    except sqlite3.Error:
        return False


def _section(study, title: str, out: Path) -> Section:
    import optuna

    trials = study.get_trials(deepcopy=False)
    states = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    section = Section(f"search study {title}", [f"{len(trials)} trials: {counts or 'none'}."])
    if len(study.directions) > 1:
        section.sentences.append("A multi-objective study: history and importances are skipped.")
        return section
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        section.sentences.append(
            f"Best trial {best.number}: value {best.value:.4g} with {best.params}."
        )
    section.images.append(("optimization history", _history(study, trials, title, out)))
    try:
        from optuna.importance import FanovaImportanceEvaluator, get_param_importances

        importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as exc:
        section.sentences.append(f"Parameter importances are not available: {exc}")
        return section
    if importances:
        section.images.append(("parameter importances", _importances(importances, title, out)))
    else:
        section.sentences.append("Parameter importances are not available: no parameters.")
    return section


def _history(study, trials, title: str, out: Path) -> str:
    """Each trial's objective by trial number, pruned trials at their last reported value, best so far."""
    import optuna

    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    fig, ax = new_figure()
    done = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    pruned = [
        (t.number, t.intermediate_values[max(t.intermediate_values)])
        for t in trials
        if t.state.name == "PRUNED" and t.intermediate_values
    ]
    if done:
        ax.scatter(*zip(*done, strict=True), label="complete", s=30)
        best, running = [], None
        for number, value in done:
            better = running is None or (value < running if minimize else value > running)
            running = value if better else running
            best.append((number, running))
        ax.step(*zip(*best, strict=True), where="post", color="red", label="best so far")
    if pruned:
        ax.scatter(
            *zip(*pruned, strict=True), marker="x", color="grey", label="pruned (last value)"
        )
    ax.set(xlabel="trial", ylabel="objective", title=f"optimization history ({study.study_name})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    finish(ax)
    return save_png(fig, out / filename("study_history", title))


def _importances(importances: dict[str, float], title: str, out: Path) -> str:
    fig, ax = new_figure(height=max(2.5, 0.5 * len(importances) + 1.2))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="hyperparameter importances")
    finish(ax)
    return save_png(fig, out / filename("study_importances", title))


def _yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
