"""The structured config of hydra/sweeper=lightdl_optuna (registered by the plugin shim in hydra_plugins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TARGET = "hydra_plugins.lightdl_sweeper.lightdl_sweeper.LightdlOptunaSweeper"


@dataclass
class SamplerConf:
    type: str = "tpe"  # tpe (Bayesian, model-based), random, grid (choices, steps or grid_points)
    seed: int | None = "${seed}"  # type: ignore[assignment]  # resumed studies add the trials done
    n_startup_trials: int = 5  # tpe: random trials before the model takes over
    # grid: values per continuous parameter without a step (log-spaced when log: true); null: as
    # many as n_trials allows (its square root for 2 such parameters: 9 trials, 3 values each)
    grid_points: int | None = None


@dataclass
class PrunerConf:
    type: str = "median"  # median, successive_halving, none
    n_startup_trials: int = 2  # median: completed trials before any pruning
    n_warmup_steps: int = 1  # median: epochs of a trial never pruned
    min_resource: Any = "auto"  # successive_halving: epochs before the first rung
    reduction_factor: int = 3  # successive_halving: 1/factor of trials promoted per rung


@dataclass
class CompareConf:
    # arms: samplers compared on the same n_trials, e.g. [grid, random]; one study per arm and seed,
    # then <sweep dir>/<arms joined by _vs_>.csv and .md (lightdl.search.compare); empty: one study.
    # seeds: restarts; each sets its studies' sampler seed and their jobs' `seed=`; empty: sampler.seed.
    arms: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


@dataclass
class SweeperConf:
    _target_: str = TARGET
    objective: str = (
        "${monitor}"  # the metric a trial is scored by (its best epoch when it is `monitor`)
    )
    direction: str = "${monitor_mode}"  # min|minimize or max|maximize
    n_trials: int = 12  # trials the study should have; a resumed study runs only the missing ones
    n_jobs: int = (
        1  # trials handed to the launcher at once (hydra/launcher=joblib runs them in parallel)
    )
    study_name: str = "lightdl"
    storage: str = "sqlite:///${paths.output_dir}/studies/${hydra.sweeper.study_name}.db"
    sampler: SamplerConf = field(default_factory=SamplerConf)
    pruner: PrunerConf = field(default_factory=PrunerConf)
    compare: CompareConf = field(default_factory=CompareConf)
    params: dict[str, Any] = field(
        default_factory=dict
    )  # key -> {type, low, high, log, step, choices}
    trial: int | None = None  # set by the sweeper for each job: the Optuna trial number it runs
