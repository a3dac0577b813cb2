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

    from lightdl.threads import divide_threads

    hydra_cfg = HydraConfig.get()
    divide_threads(hydra_cfg)  # parallel sweep jobs (joblib, submitit_local) share the cores
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
        from lightdl.data import reuse

        with reuse.across_jobs(multirun):  # a sweep's jobs share an unchanged DataModule
            summary.update(_run_mode(cfg, run_dir, group))
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
        from lightdl.distributed import global_rank
        from lightdl.loggers import finish_loggers

        writes = global_rank() == 0  # a rank started by torchrun or SLURM: rank 0 writes the run
        summary["wall_seconds"] = round(time.perf_counter() - started, 3)
        if writes:
            summary["versions"] = versions()
            summary["git_commit"] = git_commit(hydra_cfg.runtime.cwd)
            write_json(run_dir / "summary.json", summary)
            finish_loggers(summary, run_dir)
    if writes:
        _report(summary, run_dir)
    if code and not multirun:
        raise SystemExit(code)
    return summary


def _run_mode(cfg: DictConfig, run_dir: Path, group: str | None) -> dict[str, Any]:
    """The job's work by `mode`: train (fit, then test), eval (re-test a saved run) or predict
    (a saved run applied to predict.inputs); eval and predict write into this new run directory.

    ckpt_path=last resumes the run in hydra.run.dir itself (its checkpoints/last.ckpt).
    """
    if cfg.get("tune"):  # before mode: tune=lr_find refuses mode=eval|predict itself
        from lightdl.tune import run_tune

        return run_tune(cfg, run_dir)
    mode = cfg.get("mode", "train")
    if mode == "eval":
        from lightdl.evaluate import evaluate

        return evaluate(cfg, run_dir)
    if mode == "predict":
        from lightdl.evaluate import predict

        return predict(cfg, run_dir)
    from hydra.core.hydra_config import HydraConfig

    from lightdl.validate import validate

    validate(cfg)  # a wrong value is answered before torch and Lightning load (~6 s here)
    from lightdl.distributed import global_rank, ranks, world_size
    from lightdl.search.pruning import search_trial
    from lightdl.train import train

    trial = search_trial(HydraConfig.get())  # hparams_search: a trial to report to
    if trial is not None and world_size(cfg) > 1:
        raise ConfigError(
            "hparams_search prunes a trial from one process and cannot stop the other DDP ranks; "
            "search with one process per trial (drop trainer=ddp)."
        )
    earlier = _resume_in_place(cfg, run_dir)
    try:
        with ranks(cfg, run_dir):  # trainer=ddp: this process is rank 0 of the job's ranks
            return train(cfg, run_dir, group, trial)
    finally:
        if global_rank() == 0:  # torchrun's other ranks leave metrics.csv to rank 0
            _prepend_metrics(run_dir / "metrics.csv", earlier)


def _resume_in_place(cfg: DictConfig, run_dir: Path) -> str:
    """ckpt_path=last: resume the run in hydra.run.dir from its checkpoints/last.ckpt. Returns
    its metrics.csv text (Lightning's CSV logger deletes the file; _prepend_metrics restores it)."""
    if cfg.get("ckpt_path") != "last":
        return ""
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        raise ConfigError(
            f"ckpt_path=last resumes the run in hydra.run.dir, but {run_dir} has no "
            "checkpoints/last.ckpt; set hydra.run.dir=<an earlier run directory>."
        )
    cfg.ckpt_path = str(run_dir)  # a run directory: train resumes from its last.ckpt
    csv_path = run_dir / "metrics.csv"
    return csv_path.read_text() if csv_path.is_file() else ""


def _prepend_metrics(csv_path: Path, earlier: str) -> None:
    """metrics.csv = the earlier rows of the epochs before the first resumed one, then the new ones."""
    import csv
    import io

    if not earlier:
        return
    old = list(csv.DictReader(io.StringIO(earlier)))
    new = list(csv.DictReader(io.StringIO(csv_path.read_text()))) if csv_path.is_file() else []
    resumed = min((int(r["epoch"]) for r in new if r.get("epoch")), default=None)
    kept = [r for r in old if resumed is None or not r.get("epoch") or int(r["epoch"]) < resumed]
    fields = sorted({k for r in kept + new for k in r})
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept + new)


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
    if "diagnosis" in summary:
        print(f"diagnosis: {summary['diagnosis']['message']}")
    print(f"run dir: {run_dir}", flush=True)
