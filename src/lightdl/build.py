"""From a composed config to Lightning objects: DataModule, nn.Module, task, callbacks, Trainer."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lightdl.errors import ConfigError, describe_instantiation_error
from lightdl.regularizers import Regularizer


def make(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """instantiate(cfg[key]) with "unexpected keyword" turned into a ConfigError naming the key.

    Extra kwargs are passed at call time (through a partial) so objects such as the DataSpec
    reach the target unchanged rather than converted to OmegaConf nodes.
    """
    try:
        if kwargs:
            return instantiate(cfg[key], _partial_=True)(**kwargs)
        made = instantiate(cfg[key])
        if isinstance(made, functools.partial):  # check the arguments now, not at first use
            inspect.signature(made.func).bind_partial(*made.args, **made.keywords)
        return made
    except (InstantiationException, TypeError) as exc:
        sentence = describe_instantiation_error(exc, key, cfg[key].get("_target_"))
        if sentence:
            raise ConfigError(sentence) from exc
        cause = exc.__cause__
        if isinstance(cause, ConfigError | ValueError):
            raise ConfigError(f"{key}: {cause}") from exc
        raise


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    datamodule = make(cfg, "data", preprocess=make(cfg, "preprocess"))
    datamodule.setup("fit")
    return datamodule


def build_regularizers(cfg: DictConfig) -> list[Regularizer]:
    return [make(cfg.regularizer, name) for name in (cfg.regularizer or {})]


def build_net(cfg: DictConfig, spec, regularizers: list[Regularizer]):
    model_kwargs: dict[str, Any] = {}
    for regularizer in regularizers:
        model_kwargs.update(regularizer.model_kwargs())
    net = make(cfg, "model", spec=spec, activation=make(cfg, "activation"), **model_kwargs)
    make(cfg, "init")(net)
    return net


def build_task(cfg: DictConfig, net, spec, regularizers: list[Regularizer]) -> L.LightningModule:
    from lightdl.tasks.classification import ClassificationTask

    scheduler_cfg = OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.scheduler else {}
    interval = scheduler_cfg.pop("interval", "epoch")
    monitor = scheduler_cfg.pop("monitor", None)
    scheduler = instantiate(scheduler_cfg) if scheduler_cfg else None
    return ClassificationTask(
        net=net,
        loss_fn=make(cfg, "loss"),
        num_classes=spec.num_classes,
        optimizer=make(cfg, "optimizer"),
        scheduler=scheduler,
        scheduler_interval=interval,
        scheduler_monitor=monitor,
        regularizers=regularizers,
    )


def monitored(cfg: DictConfig, callbacks: dict[str, L.Callback]) -> dict[str, str]:
    """Config key -> metric name for everything that watches a metric."""
    found = {"monitor": cfg.monitor}
    for name, callback in callbacks.items():
        if getattr(callback, "monitor", None):
            found[f"callbacks.{name}.monitor"] = callback.monitor
    if cfg.scheduler and cfg.scheduler.get("monitor"):
        found["scheduler.monitor"] = cfg.scheduler.monitor
    return found


def build_trainer(
    cfg: DictConfig,
    callbacks: list[L.Callback],
    loggers: list,
    regularizers: list[Regularizer],
    run_dir: Path,
) -> L.Trainer:
    from lightdl.callbacks.progress import progress_bar

    kwargs: dict[str, Any] = {}
    for regularizer in regularizers:
        kwargs.update(regularizer.trainer_kwargs())
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks = [*callbacks, progress_bar()]
    return make(
        cfg,
        "trainer",
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
        **kwargs,
    )
