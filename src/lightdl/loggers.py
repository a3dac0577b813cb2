"""Loggers from the `logger` group, with W&B made safe: offline without a key, one run per job.

Runs are made comparable side by side: every logger gets the flat config plus the chosen option of
each config group (`optimizer: adam`) as hyperparameters; a W&B run carries the sweep as its group,
a job type and the job's overrides as tags; a TensorBoard run gets the HParams plugin entries, written
when the job ends so its metric columns are the run's final values.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

WANDB_TAG_MAX = 64  # W&B rejects longer tags
SESSION_STATUS = {  # summary.json status -> how the TensorBoard HParams session ended (else unknown)
    "completed": "STATUS_SUCCESS",
    "stopped_early": "STATUS_SUCCESS",
    "diverged": "STATUS_FAILURE",
    "failed": "STATUS_FAILURE",
    "pruned": "STATUS_ABORTED",
}
SECRET = re.compile(r"key|token|secret|password|passwd|credential", re.IGNORECASE)
MASK = "***"  # what a secret-looking key's value becomes in tags and hyperparameters


def masked(key: str, value: Any) -> Any:
    """The value, or MASK when the key's name looks like a secret (api_key, token, password)."""
    return MASK if SECRET.search(key.rsplit(".", 1)[-1]) else value


_tensorboard: list[tuple[Any, dict[str, Any]]] = []  # this job's TensorBoard loggers and hparams


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
            value = node if isinstance(node, int | float | str | bool) else str(node)
            flat[prefix[:-1]] = masked(prefix[:-1], value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def _hydra_job() -> tuple[list[str], dict[str, str]]:
    """(the job's command-line and sweep overrides, the chosen option of each config group);
    empty outside a Hydra job (a config composed in a test)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return [], {}
    hydra_cfg = HydraConfig.get()
    choices = {
        group: str(option)
        for group, option in hydra_cfg.runtime.choices.items()
        if option is not None and group != "hydra" and not group.startswith("hydra/")
    }
    return list(hydra_cfg.overrides.task), choices


def run_hparams(cfg: DictConfig, choices: dict[str, str]) -> dict[str, Any]:
    """The group choices (`optimizer: adam`, which the flat config only shows as a class path)
    followed by the flat config."""
    return {**choices, **flat_config(cfg)}


def wandb_job_type(mode: str, experiment: str | None, multirun: bool) -> str:
    """W&B job_type: eval/predict runs by their mode, else the study preset's name, else `sweep`
    for a multirun job and `train` for a single run."""
    if mode not in ("train", None):
        return mode
    return experiment or ("sweep" if multirun else "train")


def wandb_tags(overrides: list[str], extra: list[str] | tuple = ()) -> list[str]:
    """One tag per override (`optimizer.lr=0.01`, leading +/~ dropped, secret-looking values
    masked), cut to W&B's 64 characters."""
    tags: list[str] = []
    plain = [o.lstrip("+~") for o in overrides]
    plain = [f"{k}={masked(k, v)}" if sep else k for k, sep, v in (o.partition("=") for o in plain)]
    for tag in [*extra, *plain]:
        tag = str(tag)[:WANDB_TAG_MAX]
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def build_loggers(cfg: DictConfig, run_dir: Path, group: str | None) -> list:
    """Instantiate each configured logger and log the flat config as hyperparameters."""
    from hydra.utils import instantiate
    from lightning.pytorch.loggers import TensorBoardLogger

    overrides, choices = _hydra_job()
    hparams = run_hparams(cfg, choices)
    _tensorboard.clear()  # a new job: forget a previous job that never reached finish_loggers
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
            if node.get("job_type") is None:
                kwargs["job_type"] = wandb_job_type(
                    cfg.get("mode", "train"), choices.get("experiment"), group is not None
                )
            kwargs["tags"] = wandb_tags(overrides, list(node.get("tags") or []))
        logger = instantiate(node, **kwargs)
        if isinstance(logger, TensorBoardLogger):
            _tensorboard.append((logger, hparams))
        loggers.append(logger)
    for logger in loggers:
        logger.log_hyperparams(hparams)
    return loggers


def write_tensorboard_hparams(
    log_dir: str | Path, hparams: dict[str, Any], metrics: dict[str, float], status: str | None
) -> None:
    """The HParams plugin entries of one run: its hyperparameters (session start), the metric tags
    to show as columns (experiment) and how it ended (session end).

    TensorBoard fills each metric column with the last scalar logged under that tag in the run, so
    the tags are the run's own metric names (val/acc, test/acc) and no value is re-logged: a scalar
    written at an earlier step would make TensorBoard drop the curve logged after it.
    """
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import (
        PLUGIN_DATA_VERSION,
        PLUGIN_NAME,
        SESSION_END_INFO_TAG,
    )
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import Summary, SummaryMetadata
    from torch.utils.tensorboard.summary import hparams as hparams_pb

    # torch stores booleans as numbers (bool is an int) and cannot store None: keep them as words
    values = {k: str(v) if isinstance(v, bool) or v is None else v for k, v in hparams.items()}
    experiment, session_start, _ = hparams_pb(values, dict(metrics))
    ended = SessionEndInfo(status=Status.Value(SESSION_STATUS.get(status, "STATUS_UNKNOWN")))
    content = HParamsPluginData(session_end_info=ended, version=PLUGIN_DATA_VERSION)
    plugin = SummaryMetadata.PluginData(
        plugin_name=PLUGIN_NAME, content=content.SerializeToString()
    )
    session_end = Summary(
        value=[
            Summary.Value(tag=SESSION_END_INFO_TAG, metadata=SummaryMetadata(plugin_data=plugin))
        ]
    )
    writer = SummaryWriter(log_dir=str(log_dir))
    for summary in (experiment, session_start, session_end):
        writer.file_writer.add_summary(summary)
    writer.close()


def finish_loggers(summary: dict[str, Any] | None = None, run_dir: Path | None = None) -> None:
    """End this job's logging: TensorBoard HParams entries with the final metrics, then the W&B
    run. Called once per job, whatever happened, with its summary.json content."""
    for logger, hparams in _tensorboard:
        metrics = (summary or {}).get("metrics", {})
        write_tensorboard_hparams(logger.log_dir, hparams, metrics, (summary or {}).get("status"))
    _tensorboard.clear()
    _finish_wandb(summary, run_dir)


def _finish_wandb(summary: dict[str, Any] | None, run_dir: Path | None) -> None:
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
