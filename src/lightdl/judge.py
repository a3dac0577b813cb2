"""The judge: a lightdl classifier of the data's classes that scores images a generator draws.

callbacks=sample_quality asks it which class each generated image shows. Either the user names
an earlier classification run, or one is trained here on first use, in a child `python -m
lightdl` process (isolated from the run that asked for it), and cached as a run directory
<cache_dir>/<data>_<model> that later runs reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

KEY = "callbacks.sample_quality"
FINISHED = ("completed", "stopped_early")  # summary.json statuses of a judge worth reusing
IDENTITY = "lightdl.data.preprocess.Identity"  # preprocess=none: pixels in [0, 1], as generated


def finished(run_dir: Path) -> bool:
    """A run directory whose training finished: a checkpoint and a summary.json that says so."""
    summary = run_dir / "summary.json"
    checkpoints = [run_dir / "checkpoints" / name for name in ("best.ckpt", "last.ckpt")]
    if not summary.is_file() or not any(c.is_file() for c in checkpoints):
        return False
    try:
        return json.loads(summary.read_text()).get("status") in FINISHED
    except (OSError, ValueError):
        return False


def check_judge_model(model: str) -> None:
    """`model` must be a model option that classifies (not a generative one)."""
    from hydra.utils import get_class

    from lightdl.paths import conf_dir, options

    choices = options("model")
    target = None
    if model in choices:
        target = OmegaConf.load(conf_dir() / "model" / f"{model}.yaml").get("_target_")
        model_cls = get_class(target)
        if "classification" in getattr(model_cls, "tasks", ("classification",)) and not getattr(
            model_cls, "objective", None
        ):
            return
    raise ConfigError(
        f"{KEY}.judge_model must be a classifier model option (cnn, lenet, mlp, resnet, vgg, ...), "
        f"got {model!r}."
    )


def ensure_judge(data: str, model: str, epochs: int, cache_dir: str | Path) -> Path:
    """The cached judge run for (data, model), trained first when it is missing or unfinished.

    Training writes into a temporary folder beside the cache entry and renames it when the run
    has finished, so an interrupted training never leaves a half-made judge to be reused.
    """
    final = Path(cache_dir).expanduser().resolve() / f"{data}_{model}"
    if finished(final):
        print(f"sample_quality: reusing the judge {final}{_accuracy(final)}", flush=True)
        return final
    check_judge_model(model)
    final.parent.mkdir(parents=True, exist_ok=True)
    log = final.parent / f"{final.name}.log"
    print(
        f"sample_quality: training a judge (model={model} on data={data}, {epochs} epochs) in "
        f"{final}; its log is {log}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    work.chmod(0o755)  # mkdtemp's 0700 would stay on the published run directory
    try:
        with log.open("w") as out:
            done = subprocess.run(
                command(data, model, epochs, work), stdout=out, stderr=subprocess.STDOUT
            )
        if done.returncode or not finished(work):
            raise ConfigError(
                f"{KEY} could not train its judge (model={model} on data={data}, exit code "
                f"{done.returncode}); see {log}."
            )
        summary = json.loads((work / "summary.json").read_text())
        (work / "summary.json").write_text(json.dumps({**summary, "run_dir": str(final)}, indent=2))
        _publish(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"sample_quality: judge ready in {final}{_accuracy(final)}", flush=True)
    return final


def command(data: str, model: str, epochs: int, run_dir: Path) -> list[str]:
    """The child `python -m lightdl` that trains a judge into run_dir: pixels as generated
    (preprocess=none), no augmentation or regularizer, CSV metrics, checkpoints, no progress bar."""
    quoted = "'" + str(run_dir).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return [
        sys.executable,
        "-m",
        "lightdl",
        f"data={data}",
        f"model={model}",
        "preprocess=none",
        "augment=none",
        "regularizer=none",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        "logger=[csv]",
        "callbacks=[checkpoint]",
        f"hydra.run.dir={quoted}",
    ]


def _publish(work: Path, final: Path) -> None:
    """Move a finished judge run into place; a finished one already there (a parallel job) wins."""
    if finished(final):
        return
    if final.exists():
        shutil.rmtree(final)
    try:
        os.rename(work, final)
    except OSError:
        if not finished(final):
            raise


def _accuracy(run_dir: Path) -> str:
    """ ", test/acc 0.97" from the run's summary, or nothing when it has none."""
    try:
        acc = json.loads((run_dir / "summary.json").read_text())["metrics"]["test/acc"]
        return f" (test/acc {acc:.3f})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def load_judge(source: str | Path, spec: DataSpec, data: str | None = None) -> nn.Module:
    """The judge network of an earlier lightdl classification run, in eval mode, checked to fit
    the generator's data: preprocess=none, same data option (when both are known), and logits
    for exactly spec.num_classes classes from inputs of spec.input_shape."""
    import torch
    from hydra.utils import get_class

    from lightdl.models.transfer import load_run_net, run_files

    key = f"{KEY}.judge"
    checkpoint, config = run_files(str(source), key)
    cfg = OmegaConf.load(config)
    preprocess = OmegaConf.select(cfg, "preprocess._target_")
    if preprocess != IDENTITY:
        raise ConfigError(
            f"{key}={source} was trained with preprocess {preprocess}, but generators draw pixels "
            "in [0, 1]; use a judge trained with preprocess=none."
        )
    if getattr(get_class(cfg.model._target_), "objective", None):
        raise ConfigError(f"{key}={source} is not a classification run; name a classifier's run.")
    choices = config.parent / "hydra.yaml"
    trained_on = (
        OmegaConf.select(OmegaConf.load(choices), "hydra.runtime.choices.data")
        if choices.is_file()
        else None
    )
    if data and trained_on and trained_on != data:
        raise ConfigError(
            f"{key}={source} was trained on data={trained_on}, but this run uses data={data}; "
            "name a judge trained on the same data, or leave judge null to train one."
        )
    net = load_run_net(str(source), spec, key).eval()
    with torch.no_grad():
        classes = net(torch.zeros(2, *spec.input_shape)).shape[-1]
    if classes != spec.num_classes:
        raise ConfigError(
            f"{key}={source} tells {classes} classes apart, but this data has "
            f"{spec.num_classes}; use a judge trained on the same data and classes."
        )
    return net
