"""The judge: a lightdl classifier of the data's classes that scores images a generator draws.

callbacks=sample_quality asks it which class each generated image shows. Either the user names
an earlier classification run, or one is trained here on first use, in a child `python -m
lightdl` process (isolated from the run that asked for it), and cached as a run directory
<cache_dir>/<data>_<model>_e<epochs>[_c<classes>] that later runs reuse. A lock file beside it
lets parallel sweep jobs (and DDP ranks) that want the same judge train it only once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

KEY = "callbacks.sample_quality"
FINISHED = ("completed", "stopped_early")  # summary.json statuses of a judge worth reusing
IDENTITY = "lightdl.data.preprocess.Identity"  # preprocess=none: pixels in [0, 1], as generated
# what makes a process join a distributed run (Lightning, torch.distributed): a judge trained from
# inside a DDP rank must train alone, not wait for the parent's peers
CLUSTER_ENV = (
    "LOCAL_RANK",
    "WORLD_SIZE",
    "NODE_RANK",
    "GLOBAL_RANK",
    "RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


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


def cache_key(data: str, model: str, epochs: int, classes: Sequence[int] | None = None) -> str:
    """The cache entry's name: digits_cnn_e2, or digits_cnn_e2_c5-6-7 for data.classes=[5, 6, 7]
    (a judge of other epochs or classes is another judge)."""
    key = f"{data}_{model}_e{epochs}"
    return key if classes is None else key + "_c" + "-".join(str(int(c)) for c in classes)


def ensure_judge(
    data: str,
    model: str,
    epochs: int,
    cache_dir: str | Path,
    classes: Sequence[int] | None = None,
) -> Path:
    """The cached judge run for (data, model, epochs, classes), trained first when missing.

    Training writes into a temporary folder beside the cache entry and renames it into place once
    the run has finished, so a half-made judge is never there to be reused. `<key>.lock` is held
    from the check to the rename: a second job asking meanwhile waits, then reuses that judge.
    Under DDP the ranks take the lock in turn too, so one trains and the others reuse its judge
    (training on global rank 0 only, the others waiting at a barrier, would be neater; the lock
    already makes it correct).
    """
    classes = None if classes is None else [int(c) for c in classes]
    root = Path(cache_dir).expanduser().resolve()
    final = root / cache_key(data, model, epochs, classes)
    if finished(final):  # published by an atomic rename: no lock needed to reuse it
        return _reused(final)
    check_judge_model(model)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{final.name}.lock"):
        if finished(final):  # trained by the job that held the lock before us
            return _reused(final)
        if final.exists():
            raise ConfigError(
                f"{KEY}.cache_dir holds {final}, which is no finished judge run; delete it to "
                "train the judge again."
            )
        _train(data, model, epochs, classes, final)
    print(f"sample_quality: judge ready in {final}{_accuracy(final)}", flush=True)
    return final


def _reused(final: Path) -> Path:
    print(f"sample_quality: reusing the judge {final}{_accuracy(final)}", flush=True)
    return final


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (blocking until other holders let go). The file stays:
    deleting it could let a waiting job lock a file that a newer job has already replaced."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train(data: str, model: str, epochs: int, classes: list[int] | None, final: Path) -> None:
    """Train the judge in a child run and rename it to `final`; the caller holds the lock, so
    the log beside `final` is written by one job at a time."""
    log = final.parent / f"{final.name}.log"
    subset = "" if classes is None else f", classes {classes}"
    print(
        f"sample_quality: training a judge (model={model} on data={data}{subset}, {epochs} "
        f"epochs) in {final}; its log is {log}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    work.chmod(0o755)  # mkdtemp's 0700 would stay on the published run directory
    env = {k: v for k, v in os.environ.items() if k not in CLUSTER_ENV}
    try:
        with log.open("w") as out:
            done = subprocess.run(
                command(data, model, epochs, work, classes),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if done.returncode or not finished(work):
            raise ConfigError(
                f"{KEY} could not train its judge (model={model} on data={data}, exit code "
                f"{done.returncode}); see {log}."
            )
        summary = json.loads((work / "summary.json").read_text())
        (work / "summary.json").write_text(json.dumps({**summary, "run_dir": str(final)}, indent=2))
        os.rename(work, final)  # atomic: `final` appears finished or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)


def command(
    data: str, model: str, epochs: int, run_dir: Path, classes: Sequence[int] | None = None
) -> list[str]:
    """The child `python -m lightdl` that trains a judge into run_dir: pixels as generated
    (preprocess=none), no augmentation or regularizer, CSV metrics, checkpoints, no progress bar;
    only `classes` (relabelled 0..k-1 in that order, as the generator's data) when given."""
    quoted = "'" + str(run_dir).replace("\\", "\\\\").replace("'", "\\'") + "'"
    subset = [] if classes is None else ["data.classes=[" + ",".join(map(str, classes)) + "]"]
    return [
        sys.executable,
        "-m",
        "lightdl",
        f"data={data}",
        *subset,
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
