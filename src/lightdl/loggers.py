"""Loggers from the `logger` group, with W&B made safe: offline without a key, one run per job."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def has_wandb_key() -> bool:
    """True when an API key is configured (environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as flat dotted keys (lists kept as strings), for hparams tables."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node if isinstance(node, int | float | str | bool) else str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def build_loggers(cfg: DictConfig, run_dir: Path, group: str | None) -> list:
    """Instantiate each configured logger and log the flat config as hyperparameters."""
    from hydra.utils import instantiate

    loggers = []
    for name, node in (cfg.logger or {}).items():
        kwargs: dict[str, Any] = {}
        if name == "wandb":
            os.environ.setdefault("WANDB_SILENT", "true")
            os.environ["WANDB_DIR"] = str(run_dir)
            if node.get("offline") is None:
                kwargs["offline"] = not has_wandb_key()
            if node.get("group") is None and group:
                kwargs["group"] = group
            if node.get("name") is None:
                kwargs["name"] = run_dir.name if not group else f"{group}/{run_dir.name}"
        loggers.append(instantiate(node, **kwargs))
    hparams = flat_config(cfg)
    for logger in loggers:
        logger.log_hyperparams(hparams)
    return loggers


def finish_wandb(summary: dict[str, Any] | None = None, run_dir: Path | None = None) -> None:
    """Close this job's W&B run, if any, after copying the run summary and config into it.

    Without wandb.finish() a multirun would log every job into one run.
    """
    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is None:
        return
    if summary is not None:
        wandb.run.summary.update(
            {
                "status": summary.get("status"),
                "epochs": summary.get("epochs"),
                **summary.get("metrics", {}),
            }
        )
    if run_dir is not None:
        for name in ("summary.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
            if (run_dir / name).is_file():
                wandb.save(str(run_dir / name), base_path=str(run_dir), policy="now")
    wandb.finish()
