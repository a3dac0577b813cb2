"""Torch threads for sweep jobs that run side by side: each gets its share of the cores.

Two jobs on two cores each running torch's default two threads fight over the cores; one thread
each runs both at full speed. A job started by the joblib launcher (hydra.launcher.n_jobs at once)
or by submitit_local (every job of the sweep at once) divides the cores it may use by the number of
jobs running together, capped by the sweep's size when the basic sweeper's multirun.yaml tells it.
Single runs, the basic launcher and SLURM jobs (which get their own allocation) keep torch's default.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("lightdl")

# Variables read by OpenMP, MKL and BLAS libraries in processes this job starts.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cores() -> int:
    """CPUs this process may run on (its affinity mask, which SLURM and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def sweep_size(hydra_cfg: DictConfig) -> int | None:
    """How many jobs the basic sweeper hands to the launcher at once, read from the sweep's
    multirun.yaml (the job's own config no longer holds the sweep's overrides); None when unknown."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        batch = hydra_cfg.sweeper.get("n_jobs")  # e.g. trials an Optuna-style sweeper runs at once
        return batch if isinstance(batch, int) and batch > 0 else None
    try:
        master = OmegaConf.load(Path(hydra_cfg.sweep.dir) / "multirun.yaml").hydra
        params = master.sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if params else {}
        arguments = [f"{k}={v}" for k, v in params.items()] + list(master.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(overrides, master.sweeper.get("max_batch_size"))
    except Exception:  # unreadable file or a sweep needing the config loader (glob): unknown
        return None
    return max((len(batch) for batch in batches), default=None)


def parallel_jobs(hydra_cfg: DictConfig) -> int | None:
    """Jobs of this sweep running at the same time on this machine, or None when this job has the
    machine to itself (single run, basic launcher) or its own allocation (SLURM)."""
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    launcher: Any = hydra_cfg.launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target:
        n_jobs = launcher.get("n_jobs")
        if n_jobs is None:
            return None  # joblib runs the jobs one after another
        n_jobs = int(n_jobs)
        if n_jobs < 0:  # joblib's convention: -1 all cores, -2 all but one, ...
            n_jobs = max(1, cores() + 1 + n_jobs)
        size = sweep_size(hydra_cfg)
        return min(n_jobs, size) if size else n_jobs
    if target.endswith("submitit_launcher.LocalLauncher"):  # starts every job of the sweep at once
        size = sweep_size(hydra_cfg)
        return size * int(launcher.get("tasks_per_node") or 1) if size else None
    return None  # basic launcher (one job after another), SLURM: the sweep's size is not needed


def divide_threads(hydra_cfg: DictConfig) -> int | None:
    """Give this job cores // (jobs running at once) torch threads when it shares the machine with
    other jobs of its sweep; returns the thread count set, or None when torch's default is kept.
    Call it first thing in the job, before torch does any parallel work."""
    n_parallel = parallel_jobs(hydra_cfg)
    if not n_parallel or n_parallel <= 1:
        return None
    import torch

    threads = max(1, cores() // n_parallel)
    torch.set_num_threads(threads)
    try:  # allowed once per process, before any inter-op work (a reused worker has done some)
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    log.info(
        "threads: %d torch thread(s) per job (%d cores, %d jobs at once)",
        torch.get_num_threads(),
        cores(),
        n_parallel,
    )
    return threads
