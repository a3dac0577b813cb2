"""One job of `python -m lightdl`: build, fit, test, and leave summary.json whatever happens."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lightdl.app import EXIT_CONFIG, EXIT_DIVERGED, EXIT_FAILED
from lightdl.artifacts import git_commit, versions, write_json
from lightdl.errors import ConfigError, DataError

log = logging.getLogger("lightdl")


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """Hydra task function. In a single run, failures exit the process with a specific code;
    in a multirun they are recorded in the job's summary and the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    group = _sweep_name(hydra_cfg.sweep.dir) if multirun else None
    summary: dict[str, Any] = {
        "status": "failed",
        "overrides": list(hydra_cfg.overrides.task),
        "run_dir": str(run_dir),
    }
    started = time.perf_counter()
    code = 0
    try:
        from lightdl.train import train

        summary.update(train(cfg, run_dir, group))
        if summary["status"] == "diverged":
            code = EXIT_DIVERGED
    except (ConfigError, DataError) as exc:
        summary["error"] = str(exc)
        code = EXIT_CONFIG
        print(f"lightdl: error: {exc}", file=sys.stderr)
    except Exception as exc:
        summary["error"] = f"{type(exc).__name__}: {exc}"
        code = EXIT_FAILED
        if os.environ.get("LIGHTDL_DEBUG") == "1" or multirun:
            log.exception("job failed")
        print(
            f"lightdl: error: {summary['error']} (LIGHTDL_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
    finally:
        from lightdl.loggers import finish_wandb

        summary["wall_seconds"] = round(time.perf_counter() - started, 3)
        summary["versions"] = versions()
        summary["git_commit"] = git_commit(hydra_cfg.runtime.cwd)
        write_json(run_dir / "summary.json", summary)
        finish_wandb(summary, run_dir)
    _report(summary, run_dir)
    if code and not multirun:
        raise SystemExit(code)
    return summary


def _sweep_name(sweep_dir: str) -> str:
    path = Path(sweep_dir)
    return f"{path.parent.name}_{path.name}"


def _report(summary: dict[str, Any], run_dir: Path) -> None:
    metrics = summary.get("metrics", {})
    shown = "  ".join(
        f"{k}={metrics[k]:.4f}"
        for k in ("test/acc", "test/loss", "test/ppl", "test/exact_match")
        if k in metrics
    )
    reason = summary.get("reason", "")
    print(f"status: {summary['status']}{' - ' + reason if reason else ''}", flush=True)
    if shown:
        print(shown)
    print(f"run dir: {run_dir}", flush=True)
