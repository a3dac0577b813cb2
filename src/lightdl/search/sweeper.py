"""lightdl's Optuna sweeper: asks a persistent study for trials, runs each as a Hydra job through the
configured launcher, and tells the study how each ended (complete with its score, pruned, or failed).

Why not hydra-optuna-sweeper: it pins optuna<3 and only sees each job's final value, so it can neither
prune (that needs intermediate reports from inside the job) nor resume a stored study. Here the study
lives in SQLite (hydra.sweeper.storage); each job opens its own trial there and reports every
validation (lightdl.search.pruning); a second invocation with the same study name loads the study and
runs only the trials still missing from n_trials (failed ones are made up for). Trials are numbered across invocations and a job's
folder is its trial number, so a resumed study never overwrites an earlier job.

With hydra.sweeper.compare (experiment=grid_vs_random) one invocation runs a study per seed and arm
(sampler), all with the same n_trials, in folders <arm>_s<seed>_<trial>, and writes the comparison of
their best scores (lightdl.search.compare).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from lightdl.errors import ConfigError
from lightdl.search import space as search_space
from lightdl.search import study as studies

BEST_FILE = "best_params.yaml"


@dataclass
class Arm:
    """One study of the sweep: its name, sampler config and the overrides every job gets; in a
    comparison also the arm (sampler) name, seed and the prefix of its job folders."""

    study: str
    sampler: Any
    fixed: list[str]
    name: str = ""
    seed: int | None = None
    folder: str = ""


class OptunaSweeper(Sweeper):
    """hydra/sweeper=lightdl_optuna (the plugin in hydra_plugins.lightdl_sweeper subclasses this)."""

    def __init__(
        self,
        objective: str,
        direction: str,
        n_trials: int,
        n_jobs: int,
        study_name: str,
        storage: str,
        sampler: DictConfig,
        pruner: DictConfig,
        params: DictConfig | None = None,
        compare: DictConfig | None = None,
        trial: int | None = None,
    ) -> None:
        self.objective, self.direction = objective, direction
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.study_name, self.storage = study_name, storage
        self.sampler_cfg, self.pruner_cfg, self.params = sampler, pruner, params
        self.compare_cfg = (
            compare if compare is not None else OmegaConf.create({"arms": [], "seeds": []})
        )
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list:
        import optuna
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        fixed, cli_space = _split_arguments(arguments, parser)
        fixed_keys = {o.split("=", 1)[0].lstrip("+~") for o in fixed}
        space = search_space.parse_space(self.params, parser)
        space = {k: p for k, p in space.items() if k not in fixed_keys} | cli_space
        self._check(space)
        direction = studies.direction(self.direction)
        name = studies.study_name(self.study_name)
        plan = self._plan(name, fixed, fixed_keys | set(space))
        n_trials = self.n_trials
        for arm in plan:  # a bad sampler or pruner fails here, before any study exists
            studies.build_sampler(arm.sampler, space, n_trials=self.n_trials)
            if arm.sampler.type == "grid":
                points = studies.grid_points(space, arm.sampler, self.n_trials)
                n_trials = min(n_trials, studies.grid_size(space, points))
        studies.build_pruner(self.pruner_cfg)
        probe = [*plan[0].fixed, *(p.override(p.probe()) for p in space.values())]
        self.validate_batch_is_legal([probe])  # unknown keys end the search before the study exists

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        storage = studies.absolute_storage(self.storage)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if self.compare_cfg.arms:
            seeds = " ".join(dict.fromkeys(str(arm.seed) for arm in plan))
            arms = ", ".join(self.compare_cfg.arms)
            print(
                f"search: comparing {arms}, {n_trials} trials per study, seeds {seeds}", flush=True
            )
        returns, ran = [], []
        for arm in plan:
            study, results, hopeless = self._run_study(arm, storage, direction, space, n_trials)
            returns += results
            ran.append((arm, study))
            if hopeless:
                break
        if not self.compare_cfg.arms:
            write_best(ran[0][1], space, sweep_dir, self.objective)
            return returns
        for _, study in ran:
            write_best(study, space, None, self.objective)
        from lightdl.search.compare import write_comparison

        table = write_comparison(ran, space, sweep_dir, self.objective, n_trials)
        print(f"\n{table}", flush=True)
        return returns

    def _plan(self, name: str, fixed: list[str], searched: set[str]) -> list[Arm]:
        """The studies to run: this one, or with hydra.sweeper.compare one per seed and arm (seeds
        outer, so an interrupted comparison stays balanced), each seeding its sampler and its jobs."""
        arms, seeds = list(self.compare_cfg.arms), list(self.compare_cfg.seeds)
        if not arms:
            return [Arm(name, self.sampler_cfg, fixed)]
        if len(set(arms)) < len(arms) or not set(arms) <= set(studies.SAMPLERS):
            raise ConfigError(
                f"hydra.sweeper.compare.arms={arms} must name distinct samplers from "
                f"{', '.join(studies.SAMPLERS)}."
            )
        if len(set(seeds)) < len(seeds) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds
        ):
            raise ConfigError(f"hydra.sweeper.compare.seeds={seeds} must be distinct integers.")
        if "seed" in searched:
            raise ConfigError(
                "seed is set by hydra.sweeper.compare.seeds in a comparison; "
                "drop it from the command line and the search space."
            )
        base = OmegaConf.to_container(self.sampler_cfg, resolve=True)
        seeds = seeds or [int(base.get("seed") or 0)]
        return [
            Arm(
                f"{name}_{arm}_s{seed}",
                OmegaConf.create({**base, "type": arm, "seed": seed}),
                [*fixed, f"seed={seed}"],
                arm,
                seed,
                f"{arm}_s{seed}",
            )
            for seed in seeds
            for arm in arms
        ]

    def _run_study(self, arm: Arm, storage: str, direction: str, space: dict, n_trials: int):
        """Ask, launch and tell until the study holds n_trials results. Returns (study, the
        launcher's results, True when every job of the first batch failed: the search stops)."""
        import optuna

        study = optuna.create_study(
            study_name=arm.study, storage=storage, direction=direction, load_if_exists=True
        )
        if study.direction.name.lower() != direction:
            raise ConfigError(
                f"study '{arm.study}' in {storage} was created to {study.direction.name.lower()}; "
                f"hydra.sweeper.direction={self.direction} needs a new hydra.sweeper.study_name."
            )
        done = _resume(study, arm.fixed)
        study.sampler = studies.build_sampler(
            arm.sampler, space, seed_offset=done, n_trials=self.n_trials
        )
        study.pruner = studies.build_pruner(self.pruner_cfg)
        remaining = max(n_trials - done, 0)
        print(
            f"search: study '{arm.study}' ({storage}): {done} trials done, running {remaining} more "
            f"({self.objective}, {direction})",
            flush=True,
        )
        returns = []
        job_overrides = [
            f"hydra.sweeper.study_name={arm.study}",
            f"hydra.sweeper.storage={search_space.to_override(storage)}",
        ]
        while remaining > 0:
            distributions = {k: p.distribution for k, p in space.items()}
            trials = [study.ask(distributions) for _ in range(min(self.n_jobs, remaining))]
            batch = [
                [
                    *arm.fixed,
                    *(space[k].override(v) for k, v in t.params.items()),
                    f"hydra.sweeper.trial={t.number}",
                    *job_overrides,
                    *([f"hydra.sweep.subdir={arm.folder}_{t.number}"] if arm.folder else []),
                ]
                for t in trials
            ]
            results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            states = [self._tell(study, t, r) for t, r in zip(trials, results, strict=True)]
            returns.append(results)
            if len(returns) == 1 and all(  # a broken setup, not a diverging learning rate
                s == "FAIL" and _summary(r).get("status") != "diverged"
                for s, r in zip(states, results, strict=True)
            ):
                print("search: every trial of the first batch failed; stopping the search.")
                return study, returns, True
            remaining -= len(trials)
        return study, returns, False

    def _check(self, space: dict) -> None:
        if not space:
            raise ConfigError(
                "hydra.sweeper.params is empty; give at least one key to search, e.g. "
                "optimizer.lr: {type: float, low: 1e-4, high: 1e-1, log: true}."
            )
        for key in ("n_trials", "n_jobs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"hydra.sweeper.{key}={getattr(self, key)} must be at least 1.")

    def _tell(self, study, trial, result) -> str:
        """Record a finished job in the study; returns the trial state's name."""
        from optuna.trial import TrialState

        state, value = outcome(result, self.objective)
        summary = _summary(result)
        if summary.get("run_dir"):
            trial.set_user_attr("run_dir", summary["run_dir"])
        if state == "COMPLETE":
            study.tell(trial, value)
        else:
            study.tell(trial, state=TrialState[state])
        return state


def _split_arguments(arguments: list[str], parser) -> tuple[list[str], dict]:
    """Command-line overrides: fixed ones go to every job, sweeps (a,b / choice / interval / range)
    join the search space."""
    fixed, swept = [], {}
    for override in parser.parse_overrides(arguments):
        if override.is_sweep_override():
            param = search_space.from_sweep(override, override.get_key_element())
            swept[param.key] = param
        else:
            fixed.append(override.input_line)
    return fixed, swept


def _resume(study, fixed: list[str]) -> int:
    """Trials that already have a result (complete or pruned). Failed ones do not count, so a resumed
    study makes up for them; trials left running by an interrupted invocation are marked failed."""
    from optuna.trial import TrialState

    previous = study.user_attrs.get("overrides")
    if previous is None:
        study.set_user_attr("overrides", fixed)
    elif previous != fixed:
        print(
            f"search: warning: study '{study.study_name}' continues with other overrides "
            f"(was: {' '.join(previous) or 'none'}; now: {' '.join(fixed) or 'none'})"
        )
    done = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
    return done


def _summary(result) -> dict[str, Any]:
    from hydra.core.utils import JobStatus

    if result.status != JobStatus.COMPLETED or not isinstance(result.return_value, dict):
        return {}
    return result.return_value


def objective_value(summary: dict[str, Any], objective: str) -> float | None:
    """The trial's score: the best epoch's value when the objective is the monitored metric, else
    its value at the last epoch."""
    best = summary.get("best") or {}
    if best.get("metric") == objective:
        return best.get("value")
    return (summary.get("metrics") or {}).get(objective)


def outcome(result, objective: str) -> tuple[str, float | None]:
    """(Optuna state name, value) of a finished job: pruned -> PRUNED; failed, diverged or without
    a finite objective -> FAIL; else COMPLETE with its score."""
    summary = _summary(result)
    status = summary.get("status")
    if status == "pruned":
        return "PRUNED", None
    value = (
        objective_value(summary, objective) if status not in (None, "failed", "diverged") else None
    )
    if value is None or not math.isfinite(value):
        return "FAIL", None
    return "COMPLETE", float(value)


def write_best(study, space: dict, sweep_dir: Path | None, objective: str) -> dict | None:
    """<sweep dir>/best_params.yaml (sweep_dir None: none, as in a comparison of several studies)
    and one printed line with the best parameters as overrides."""
    import yaml
    from optuna.trial import TrialState

    counts = {s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for t in study.get_trials(deepcopy=False):
        if t.state.name.lower() in counts:
            counts[t.state.name.lower()] += 1
    if not counts["complete"]:
        print(f"search: no trial of study '{study.study_name}' completed; no best parameters.")
        return None
    best = study.best_trial
    params, overrides = {}, []
    for key, sampled in best.params.items():
        param = space.get(key) or search_space.Param(key, None)
        params[key] = param.value(sampled)
        overrides.append(param.override(sampled))
    record = {
        "study": study.study_name,
        "objective": objective,
        "direction": study.direction.name.lower(),
        "value": best.value,
        "trial": best.number,
        "trials": counts,
        "params": params,
        "overrides": " ".join(overrides),
        "run_dir": best.user_attrs.get("run_dir"),
    }
    header = "# Best trial of the study so far; `overrides` reruns it as one job (add the preset's other settings).\n"
    if sweep_dir is not None:
        (sweep_dir / BEST_FILE).write_text(header + yaml.safe_dump(record, sort_keys=False))
    which = "" if sweep_dir else f"{study.study_name} "  # a comparison prints one line per study
    print(
        f"search: {which}best trial {best.number} {objective}={best.value:.4g} "
        f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed): "
        + " ".join(shlex.quote(o) for o in overrides),
        flush=True,
    )
    return record
