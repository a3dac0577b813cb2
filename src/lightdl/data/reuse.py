"""One DataModule kept between the jobs of a sweep that run in the same process.

Hydra's basic launcher runs a sweep's jobs one after another in one process, and joblib reuses its
worker processes. Jobs whose `data` and `preprocess` configs resolve to the same values would each
load, split and preprocess the same dataset again (Fashion-MNIST: ~0.8 s a job on a 2-core CPU,
after the decoded IDX arrays, which are cached separately). Inside a multirun job
(`across_jobs(True)`, entered by lightdl.job) the last DataModule built is reused when the next
job's data config is the same; the shuffling order is seeded per epoch, so a reused DataModule
gives each job the batches a fresh one would. Only the last one is kept, so a sweep over data
options holds one dataset at a time. Single runs and direct calls never reuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig, OmegaConf

_enabled = False
_last: tuple[str, Any] | None = None  # (data config key, DataModule)


@contextmanager
def across_jobs(enabled: bool) -> Iterator[None]:
    """Reuse DataModules between jobs while inside this block (lightdl.job: multirun jobs)."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def key(cfg: DictConfig) -> str:
    """What decides a DataModule's data: the resolved `data` and `preprocess` configs."""
    nodes = {name: cfg.get(name) for name in ("data", "preprocess")}
    plain = {
        k: OmegaConf.to_container(v, resolve=True) if v is not None else None
        for k, v in nodes.items()
    }
    return json.dumps(plain, sort_keys=True, default=str)


def datamodule(cfg: DictConfig, build: Callable[[], Any]) -> Any:
    """The last job's DataModule when reuse is on and `cfg`'s data config matches, else `build()`."""
    global _last
    if not _enabled:
        return build()
    wanted = key(cfg)
    if _last is not None and _last[0] == wanted:
        return _last[1]
    _last = None  # let the previous dataset go before loading the next
    built = build()
    _last = (wanted, built)
    return built
