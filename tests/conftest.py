"""Shared helpers: compose the real configs from conf/, run the CLI in a subprocess, tiny data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lightdl.paths import conf_dir

ROOT = Path(__file__).resolve().parents[1]

# pytest-xdist (`-n 2` in pyproject.toml) runs one test process per core: each, and every lightdl
# process a test starts, gets cores // workers torch threads (set before torch is imported), so the
# cores are shared, not oversubscribed. Tiny models gain nothing from a second thread anyway.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _threads = str(max(1, len(os.sched_getaffinity(0)) // _workers))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)
FAST = [  # curves.png costs ~0.5 s a run: in-process tests skip it; CLI runs (run_cli) still draw it
    "data=digits",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "test=false",
    "diagnosis.plot=false",
]


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def make_cfg(tmp_path: Path, *overrides: str, fast: bool = True) -> DictConfig:
    """The real config composed as the CLI would, with run paths inside tmp_path."""
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"paths.output_dir={tmp_path}",
                f"paths.run_dir={tmp_path / 'run'}",
                *(FAST if fast else []),
                *overrides,
            ],
        )


def quiet_env() -> dict[str, str]:
    """This process's environment for a child lightdl: W&B offline and silent, no key, no debug."""
    base = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "LIGHTDL_DEBUG")}
    return {**base, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    """`python -m lightdl ARGS` in a fresh process; returns CompletedProcess with text output."""
    full_env = {**quiet_env(), "LIGHTDL_OUTPUTS": str(cwd / "outputs"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lightdl", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fit_net(tmp_path: Path, *overrides: str, callbacks=(), epochs: int = 3):
    """Train the composed config (digits, MLP by default) with a real Trainer; returns (net, trainer)."""
    import lightning as L

    from lightdl import build

    cfg = make_cfg(tmp_path, f"trainer.max_epochs={epochs}", *overrides)
    datamodule = build.build_datamodule(cfg)
    regularizers = build.build_regularizers(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, regularizers)
    task = build.build_task(cfg, net, datamodule, regularizers)
    trainer = build.build_trainer(cfg, list(callbacks), [], regularizers, tmp_path)
    trainer.fit(task, datamodule=datamodule)
    return net, trainer


def wandb_records(path: Path):
    """The protobuf records of an offline run's .wandb file (W&B's leveldb-style log: a 7-byte
    file header, then 32 KiB blocks of records each with a 7-byte header: crc, length, type)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left for a header: the block is padded
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # full, first
            pending = chunk
        elif kind in (3, 4):  # middle, last
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
