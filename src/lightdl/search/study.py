"""Optuna pieces built from the sweeper's config: direction, sampler, pruner, storage URL, and opening a
study. Used by the sweeper (which asks and tells) and by each job (which reports and may be pruned)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lightdl.errors import ConfigError

DIRECTIONS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "successive_halving", "none")


def direction(value: str) -> str:
    if value not in DIRECTIONS:
        raise ConfigError(
            f"hydra.sweeper.direction={value!r} is not a direction; use min, max, minimize or maximize."
        )
    return DIRECTIONS[value]


def study_name(value: str) -> str:
    if not re.fullmatch(r"[\w.-]+", value or ""):
        raise ConfigError(
            f"hydra.sweeper.study_name={value!r} must be letters, digits, '_', '.' or '-' (it names files)."
        )
    return value


def absolute_storage(url: str) -> str:
    """The storage URL with a relative SQLite path made absolute (jobs may run elsewhere) and its
    folder created."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path = Path(url[len(prefix) :]).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def build_sampler(cfg: Any, space: dict[str, Any], seed_offset: int = 0, n_trials: int = 0):
    """Optuna sampler from hydra.sweeper.sampler; the seed moves on by the trials already run so a
    resumed random search does not repeat its first samples."""
    import optuna

    kind = cfg.type
    seed = None if cfg.seed is None else int(cfg.seed) + seed_offset
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":

        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, *args: Any) -> None:
                """No Study.stop() (it only works inside optimize); n_trials is capped at the grid size."""

        return Grid(grid(space, grid_points(space, cfg, n_trials)), seed=seed)
    raise ConfigError(
        f"hydra.sweeper.sampler.type={kind!r} is not a sampler; use one of {', '.join(SAMPLERS)}."
    )


def _stepless(param: Any) -> bool:
    """A continuous parameter without a step: the grid spaces its points itself."""
    return not param.values and getattr(param.distribution, "step", None) is None


def grid_points(space: dict[str, Any], cfg: Any, n_trials: int) -> int | None:
    """Points per stepless parameter: sampler.grid_points, else the most whose whole grid fits in
    n_trials (its k-th root for k such parameters: 9 trials give a 3x3 grid). None when none is stepless."""
    stepless = [key for key, param in space.items() if _stepless(param)]
    if not stepless:
        return None
    points = cfg.get("grid_points")
    if points is not None:
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ConfigError(
                f"hydra.sweeper.sampler.grid_points={points!r} must be an integer of at least 2."
            )
        return points
    fixed = grid_size({k: p for k, p in space.items() if k not in stepless})
    points = 1
    while fixed * (points + 1) ** len(stepless) <= n_trials:
        points += 1
    if points < 2:
        raise ConfigError(
            f"hydra.sweeper.n_trials={n_trials} is too small for a grid with 2 points of "
            f"{', '.join(stepless)} ({fixed * 2 ** len(stepless)} trials); raise it, give those "
            "parameters a step, or set hydra.sweeper.sampler.grid_points."
        )
    return points


def spaced(distribution: Any, points: int) -> list:
    """`points` floats from low to high, evenly spaced (in log space when log: true); the inner ones
    rounded to 4 significant digits so the overrides stay readable."""
    low, high = distribution.low, distribution.high
    if distribution.log:
        raw = [low * (high / low) ** (i / (points - 1)) for i in range(points)]
    else:
        raw = [low + (high - low) * i / (points - 1) for i in range(points)]
    inner = [min(max(float(f"{v:.4g}"), low), high) for v in raw[1:-1]]
    return [low, *inner, high]


def grid(space: dict[str, Any], points: int | None = None) -> dict[str, list]:
    """Every point of each parameter: its choices, its steps, or `points` spaced values for a
    continuous one without a step (see grid_points)."""
    values = {}
    for key, param in space.items():
        dist = param.distribution
        if param.values:
            values[key] = list(dist.choices)
        elif not _stepless(param):
            count = int(round((dist.high - dist.low) / dist.step)) + 1
            values[key] = [dist.low + i * dist.step for i in range(count)]
        elif points is None:
            raise ConfigError(
                f"hydra.sweeper.params.{key} is continuous; sampler.type=grid needs choices, a step "
                "or hydra.sweeper.sampler.grid_points."
            )
        else:
            values[key] = spaced(dist, points)
    return values


def grid_size(space: dict[str, Any], points: int | None = None) -> int:
    size = 1
    for values in grid(space, points).values():
        size *= len(values)
    return size


def build_pruner(cfg: Any):
    """Optuna pruner from hydra.sweeper.pruner (none keeps every trial but still records its curve)."""
    import optuna

    kind = cfg.type
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.n_startup_trials, n_warmup_steps=cfg.n_warmup_steps
        )
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=cfg.min_resource, reduction_factor=cfg.reduction_factor
        )
    if kind in ("none", None):
        return optuna.pruners.NopPruner()
    raise ConfigError(
        f"hydra.sweeper.pruner.type={kind!r} is not a pruner; use one of {', '.join(PRUNERS)}."
    )
