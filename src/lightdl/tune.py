"""tune=lr_find: Lightning's learning-rate range test on the composed config, instead of training.

The lr grows from min_lr to max_lr over num_training optimizer steps of the real task, data,
regularizers and optimizer (its own lr is replaced; any scheduler is suspended). Lightning suggests
the lr where the smoothed loss falls fastest. The weights are restored afterwards and no
checkpoint, log or test is written: only lr_find.png, lr_find.json and summary.json.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from lightdl.errors import ConfigError
from lightdl.paths import chosen

KEY = "tune"
LR_FIND_CHATTER = (  # info lines about the finder's temporary checkpoint and early stop (said below)
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
    "lightning.pytorch.tuner.lr_finder",
)


def run_tune(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Dispatch on tune.name (only lr_find so far)."""
    name = cfg.tune.get("name")
    if name != "lr_find":
        raise ConfigError(f"{KEY}.name must be 'lr_find', got {name!r}.")
    if cfg.get("mode", "train") != "train":
        raise ConfigError(
            f"tune=lr_find tunes a training run; it cannot be combined with mode={cfg.mode}."
        )
    return lr_find(cfg, run_dir)


def lr_find(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from lightning.pytorch.tuner import Tuner

    from lightdl import build
    from lightdl.artifacts import write_json
    from lightdl.train import assemble, quiet_libraries
    from lightdl.validate import validate

    validate(cfg)
    settings = _settings(cfg.tune)
    quiet_libraries()
    for name in LR_FIND_CHATTER:
        logging.getLogger(name).setLevel(logging.WARNING)
    datamodule, regularizers, net, task = assemble(cfg)
    if not task.automatic_optimization:
        raise ConfigError(
            f"tune=lr_find needs a model trained by one optimizer; model={chosen('model') or '?'} steps "
            "several by hand (set their learning rates directly)."
        )
    with open_dict(cfg):  # the test's step budget decides how long it runs (and what step-count
        cfg.trainer.max_epochs = -1  # schedulers such as onecycle see as the run's length)
        cfg.trainer.max_steps = settings["num_training"]
    from lightdl.distributed import one_process

    trainer = build.build_trainer(one_process(cfg), [], [], regularizers, run_dir)  # not DDP
    finder = Tuner(trainer).lr_find(task, datamodule=datamodule, update_attr=False, **settings)
    lrs, losses = finder.results["lr"], finder.results["loss"]
    suggested = finder.suggestion()
    if suggested is None or not math.isfinite(suggested):
        raise ConfigError(
            f"tune=lr_find took only {len(losses)} steps, too few to suggest a learning rate; "
            "raise tune.num_training or tune.early_stop_threshold."
        )
    suggested = float(f"{suggested:.3g}")
    plot = _plot(lrs, losses, suggested, run_dir / "lr_find.png")
    write_json(run_dir / "lr_find.json", {"suggested_lr": suggested, "lr": lrs, "loss": losses})
    override = f"optimizer.lr={suggested:g}"
    stopped = ", stopped as the loss diverged" if len(lrs) < settings["num_training"] else ""
    print(
        f"lr_find: suggested learning rate {suggested:g} ({len(lrs)} steps up to lr {lrs[-1]:.3g}{stopped}); train with: {override}"
    )
    return {
        "status": "completed",
        "lr_find": {
            "suggested_lr": suggested,
            "override": override,
            "steps": len(lrs),
            "plot": plot.name,
            "lr_range": [lrs[0], lrs[-1]],
        },
    }


def _settings(node: DictConfig) -> dict[str, Any]:
    """Tuner.lr_find's arguments from the tune node (checked by lightdl.validate's rules)."""
    return {
        k: node.get(k) for k in ("min_lr", "max_lr", "num_training", "mode", "early_stop_threshold")
    }


def _plot(lrs: list[float], losses: list[float], suggested: float, path: Path) -> Path:
    """Loss against lr (log axis) with the suggestion marked."""
    from matplotlib.figure import Figure

    from lightdl.report.plots import save_png

    fig = Figure(figsize=(6.0, 4.0), dpi=90, layout="constrained")
    ax = fig.subplots()
    ax.plot(lrs, losses, marker=".", markersize=3)
    ax.axvline(suggested, color="red", linestyle=":", label=f"suggested lr {suggested:g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="lr range test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_png(fig, path)
    return path
