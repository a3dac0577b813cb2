"""train(cfg): the whole life of one run, from composed config to final metrics."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lightdl.validate import validate

QUIET = (  # Lightning loggers that print GPU/TPU availability and product tips on every run
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.distributed",  # "Initializing distributed: GLOBAL_RANK: ..."
)
NOISE = (  # Lightning warnings that do not apply to lightdl's run directories and in-memory batches
    ".*does not have many workers.*",
    ".*exists and is not empty.*",
    ".*treespec, LeafSpec.*",
    ".*smaller than the logging interval.*",  # training metrics are logged once per epoch
)


def quiet_libraries() -> None:
    """Lightning's and torch's routine info lines and known-harmless warnings stay out of runs."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for noise in NOISE:
        warnings.filterwarnings("ignore", noise)


def train(
    cfg: DictConfig, run_dir: Path, group: str | None = None, search: DictConfig | None = None
) -> dict[str, Any]:
    """Build everything from `cfg`, fit, test the best checkpoint; returns the summary fields.
    `search` (the sweeper's config in a trial of hparams_search) reports to the trial and may prune."""
    validate(cfg)
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from lightdl import build, distributed
    from lightdl.callbacks.history import History
    from lightdl.callbacks.nan_guard import NanGuard
    from lightdl.loggers import build_loggers
    from lightdl.models.summary import count_params, summarize
    from lightdl.search.pruning import TrialPruning
    from lightdl.validate import check_monitors

    quiet_libraries()
    datamodule, regularizers, net, task = assemble(cfg)
    callbacks = {name: build.make(cfg.callbacks, name) for name in (cfg.callbacks or {})}
    from_callbacks = tuple(m for c in callbacks.values() for m in getattr(c, "logged_metrics", ()))
    monitors = build.monitored(cfg, callbacks)
    if search is not None:
        monitors["hydra.sweeper.objective"] = search.objective
    check_monitors(monitors, task.logged_metrics + from_callbacks)
    pruning = TrialPruning.open(search) if search is not None else None
    print(summarize(net, datamodule.example_input()), flush=True)

    history = History(cfg.monitor, cfg.monitor_mode)
    loggers = build_loggers(cfg, run_dir, group)
    trainer = build.build_trainer(
        cfg,
        [*callbacks.values(), history, *filter(None, [pruning])],
        loggers,
        regularizers,
        run_dir,
    )
    distributed.ready()  # trainer=ddp: every rank lightdl started has got this far
    fit_started = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=_resume_path(cfg.ckpt_path))
    fit_seconds = round(time.perf_counter() - fit_started, 3)

    guard = next((c for c in callbacks.values() if isinstance(c, NanGuard)), None)
    stopper = next((c for c in callbacks.values() if isinstance(c, EarlyStopping)), None)
    checkpoint = next(  # the monitored one (best.ckpt), not checkpoint_last
        (c for c in callbacks.values() if isinstance(c, ModelCheckpoint) and c.monitor), None
    )
    result: dict[str, Any] = {"status": "completed"}
    if guard is not None and guard.diverged is not None:
        result.update(status="diverged", reason=guard.message(), diverged=guard.diverged)
    elif pruning is not None and pruning.pruned_epoch is not None:
        result.update(status="pruned", reason=pruning.reason())
    elif stopper is not None and stopper.stopped_epoch > 0:
        result.update(
            status="stopped_early",
            reason=f"{stopper.monitor} did not improve for {stopper.patience} epochs",
        )
    if cfg.test and result["status"] not in ("diverged", "pruned"):
        best = checkpoint.best_model_path if checkpoint is not None else ""
        trainer.test(task, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    result.update(
        metrics={
            **history.last(),
            **{k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1},
        },
        best=history.best(),
        epochs=trainer.current_epoch,
        global_steps=trainer.global_step,
        trainable_params=count_params(net),
        fit_seconds=fit_seconds,
        world_size=trainer.world_size,  # processes that trained (trainer=ddp: trainer.devices)
    )
    if trainer.is_global_zero:  # the other DDP ranks write nothing
        result.update(_look_back(cfg, history.epochs, trainer.callbacks, run_dir, task))
    return result


def _look_back(
    cfg: DictConfig, epochs: list[dict], callbacks, run_dir: Path, task
) -> dict[str, Any]:
    """The diagnosis of the learning curves (and curves.png), and the callbacks' warnings."""
    from lightdl.curves import write_curves
    from lightdl.diagnosis import diagnose

    settings = cfg.get("diagnosis") or {}
    found = diagnose(
        epochs,
        **{
            k: settings[k]
            for k in ("underfit_below", "overfit_gap", "overfit_loss_rise")
            if k in settings
        },
        by_loss=getattr(task, "loss_diagnoses_fit", True),
    )
    extra: dict[str, Any] = {"diagnosis": found}
    if settings.get("plot", True) and write_curves(epochs, run_dir / "curves.png", found["epoch"]):
        extra["curves"] = "curves.png"
    warned = [w for c in callbacks for w in getattr(c, "warnings", ())]
    if warned:
        extra["warnings"] = warned
    return extra


def assemble(cfg: DictConfig) -> tuple[Any, list, Any, Any]:
    """Seeded (datamodule, regularizers, net, task) for `cfg`: what train and tune=lr_find share."""
    import lightning as L

    from lightdl import build

    L.seed_everything(cfg.seed, verbose=False)
    datamodule = build.build_datamodule(cfg)
    regularizers = build.build_regularizers(cfg)
    net = build.build_net(cfg, datamodule.spec, regularizers)
    return datamodule, regularizers, net, build.build_task(cfg, net, datamodule, regularizers)


def _resume_path(ckpt_path: str | None) -> str | None:
    """A checkpoint file, or a run directory whose checkpoints/last.ckpt is used."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        from lightdl.errors import ConfigError

        raise ConfigError(f"ckpt_path={ckpt_path}: no checkpoint file at {path}.")
    return str(path)
