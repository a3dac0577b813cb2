"""mode=eval and mode=predict: an earlier run rebuilt from its own saved config and checkpoint.

eval re-tests it on its test split (Lightning's `trainer.test`, exactly as the training run's own
test of best.ckpt) and writes eval.json; predict applies it to new inputs (a .npy array or a folder
of images) with the run's own fitted preprocessing and writes predictions.csv. Both write into the
new run directory only: the source run is read, never written.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lightdl.artifacts import write_json
from lightdl.errors import ConfigError
from lightdl.models.transfer import run_files

OWN_KEYS = ("mode", "ckpt_path", "predict", "hydra")  # this command's keys, not the saved run's
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_MODES = {1: "L", 3: "RGB"}  # channels -> Pillow mode


def evaluate(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Test the run named by cfg.ckpt_path on its test split; eval.json goes into `run_dir`."""
    saved, checkpoint, applied = saved_run(cfg, overrides)
    datamodule, task, regularizers = rebuild(saved, checkpoint)
    from lightdl import build
    from lightdl.distributed import one_process

    trainer = build.build_trainer(one_process(saved), [], [], regularizers, run_dir)
    trainer.test(task, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    for name in sorted(metrics):
        print(f"  {name} = {metrics[name]:.6g}")
    result = {"status": "completed", "mode": "eval", "source_checkpoint": str(checkpoint)}
    write_json(run_dir / "eval.json", {**result, "metrics": metrics, "overrides": applied})
    return {**result, "metrics": metrics}


def predict(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Class predictions of the run named by cfg.ckpt_path for cfg.predict.inputs, as
    predictions.csv in `run_dir`: input (row index or file name), class, label, prob_<label>..."""
    inputs = OmegaConf.select(cfg, "predict.inputs")
    if not inputs:
        raise ConfigError(
            "mode=predict needs predict.inputs: a .npy file of inputs or a folder of PNG/JPEG images."
        )
    saved, checkpoint, _ = saved_run(cfg, overrides)
    datamodule, task, _ = rebuild(saved, checkpoint)
    spec = datamodule.spec
    if spec.task != "classification" or getattr(task.net, "objective", None):
        raise ConfigError(
            f"mode=predict writes class predictions, but the run at ckpt_path={cfg.ckpt_path} is "
            f"not a classifier ({getattr(task.net, 'objective', None) or spec.task}); use mode=eval."
        )
    x, names = read_inputs(str(inputs), spec)
    if datamodule.preprocess is not None:  # the statistics fitted on the run's training split
        x = datamodule.preprocess(x)
    task.eval()
    with torch.inference_mode():
        scores = torch.cat([task.net(b) for b in x.split(datamodule.eval_batch_size)])
    probs = scores.float().softmax(dim=-1)
    labels = class_labels(datamodule, spec.num_classes)
    path = run_dir / "predictions.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["input", "class", "label", *(f"prob_{label}" for label in labels)])
        for name, row in zip(names, probs.tolist(), strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            writer.writerow([name, best, labels[best], *(f"{p:.6f}" for p in row)])
    print(f"wrote {len(names)} predictions to {path}")
    return {
        "status": "completed",
        "mode": "predict",
        "source_checkpoint": str(checkpoint),
        "predictions": str(path),
        "count": len(names),
    }


def saved_run(
    cfg: DictConfig, overrides: list[str] | None = None
) -> tuple[DictConfig, Path, list[str]]:
    """(the run's own .hydra/config.yaml with this command's other overrides applied, the
    checkpoint: best.ckpt for a run directory, as the training run itself tested, and the
    overrides applied)."""
    from lightdl.validate import validate

    source = cfg.get("ckpt_path")
    if not source:
        raise ConfigError(
            f"mode={cfg.mode} needs ckpt_path: an earlier run's directory (its best.ckpt is used) "
            "or one of its checkpoint files."
        )
    checkpoint, config = run_files(str(source), key="ckpt_path")
    checkpoint = checkpoint.resolve()
    saved = OmegaConf.load(config)
    if "monitor_mode" not in saved and saved.get("mode") in ("min", "max"):
        saved.monitor_mode = saved.mode  # runs saved before `mode` meant train/eval/predict
    applied = _apply(saved, _task_overrides() if overrides is None else overrides, config)
    saved.mode, saved.ckpt_path = cfg.mode, str(checkpoint)
    validate(saved)
    return saved, checkpoint, applied


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _apply(saved: DictConfig, overrides: list[str], config: Path) -> list[str]:
    """Key overrides (data.eval_batch_size=512, trainer.accelerator=cpu) on top of the saved
    config; group choices must be the run's own, since the checkpoint fits only its network."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lightdl.paths import group_names

    choices, applied = _run_choices(config), []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key.split(".")[0].split("/")[0] in OWN_KEYS:
            continue
        value = override.value()
        if key in group_names():
            if choices.get(key) == value:
                continue
            raise ConfigError(
                f"{key}={value}: mode=eval and mode=predict rebuild the run from its own config "
                f"({key}={choices.get(key, 'as saved')}), so only keys can be overridden, "
                "such as data.eval_batch_size=512 or trainer.accelerator=cpu."
            )
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(saved, parent) if parent else saved
        if not (override.is_add() or override.is_force_add()) and (
            not isinstance(node, DictConfig) or leaf not in node
        ):
            raise ConfigError(f"unknown key '{key}' in the run's saved config {config}.")
        OmegaConf.update(saved, key, value, force_add=True)
        applied.append(override.input_line)
    return applied


def _run_choices(config: Path) -> dict[str, Any]:
    """The run's group choices from its .hydra/hydra.yaml (empty when it has none)."""
    hydra_yaml = config.parent / "hydra.yaml"
    if not hydra_yaml.is_file():
        return {}
    choices = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.choices")
    return OmegaConf.to_container(choices) if choices is not None else {}


def rebuild(saved: DictConfig, checkpoint: Path):
    """(datamodule, task, regularizers) built from `saved` exactly as train.py builds them, with
    the checkpoint's weights loaded (torch.load with weights_only=True: tensors, no pickled code).

    The datamodule refits its preprocessing on the same training split (same data, split_seed and
    val_size), so the statistics are the training run's own.
    """
    import lightning as L

    from lightdl import build
    from lightdl.train import quiet_libraries

    quiet_libraries()
    L.seed_everything(saved.seed, verbose=False)
    datamodule = build.build_datamodule(saved)
    regularizers = build.build_regularizers(saved)
    net = build.build_net(saved, datamodule.spec, regularizers)
    task = build.build_task(saved, net, datamodule, regularizers)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # a corrupt or foreign file: one sentence, not a traceback
        raise ConfigError(f"ckpt_path: cannot read the checkpoint {checkpoint}: {exc}") from exc
    try:
        task.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"ckpt_path: the checkpoint {checkpoint} does not fit the network its run's config "
            f"builds: {str(exc).splitlines()[0]}"
        ) from exc
    return datamodule, task, regularizers


def read_inputs(source: str, spec) -> tuple[torch.Tensor, list[str]]:
    """(inputs of shape (N, *spec.input_shape), a name per input) from a .npy file or an image
    folder; inputs are in the data's raw scale (images: pixels in [0, 1]), before preprocessing."""
    import numpy as np

    from lightdl.data.files import DataFileError, check_file, npy_problem

    path = Path(source).expanduser()
    shape = tuple(spec.input_shape)
    if path.is_dir():
        return _read_images(path, source, spec)
    check_file(path, "predict.inputs:")  # missing: one sentence naming it
    if path.suffix.lower() != ".npy":
        raise DataFileError(
            f"predict.inputs={source}: expected a .npy file or a folder of PNG/JPEG images, "
            "got another kind of file (wrong format)."
        )
    if path.stat().st_size == 0:
        raise DataFileError(f"predict.inputs={source} is empty: not a .npy array.")
    try:
        array = np.load(path, allow_pickle=False)
    except PermissionError:
        raise DataFileError(f"predict.inputs={source} is unreadable: permission denied.") from None
    except (ValueError, OSError, EOFError) as exc:  # a cut file raises either, by where it is cut
        raise DataFileError(f"predict.inputs={source} is {npy_problem(exc)}.") from None
    if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != shape or len(array) == 0:
        raise DataFileError(
            f"predict.inputs={source}: expected an array of shape (N, {', '.join(map(str, shape))}) "
            f"for this run's inputs, got {tuple(array.shape)}."
        )
    if spec.kind == "tokens":
        if (
            not np.issubdtype(array.dtype, np.integer)
            or array.min() < 0
            or (spec.vocab_size and array.max() >= spec.vocab_size)
        ):
            raise DataFileError(
                f"predict.inputs={source}: this run reads token ids, integers in "
                f"[0, {spec.vocab_size}), got {array.dtype} values in [{array.min()}, {array.max()}]."
            )
        return torch.as_tensor(array, dtype=torch.int64), [str(i) for i in range(len(array))]
    return torch.as_tensor(array, dtype=torch.float32), [str(i) for i in range(len(array))]


def _read_images(folder: Path, source: str, spec) -> tuple[torch.Tensor, list[str]]:
    """PNG/JPEG files of `folder` in name order, converted to the run's channels (grey or RGB) and
    size (area-averaged when shrinking, bilinear when enlarging), pixels scaled to [0, 1]."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from lightdl.data.files import DataFileError

    shape = tuple(spec.input_shape)
    if spec.kind != "image" or shape[0] not in IMAGE_MODES:
        raise ConfigError(
            f"predict.inputs={source} is a folder of images, but this run reads {spec.kind} inputs "
            f"of shape {shape}; give a .npy file of shape (N, {', '.join(map(str, shape))})."
        )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataFileError(
            f"predict.inputs={source}: the folder holds no .png, .jpg or .jpeg file."
        )
    channels, height, width = shape
    images = []
    for file in files:
        if file.is_dir():
            raise DataFileError(f"predict.inputs: {file} is a directory, not an image.")
        if file.stat().st_size == 0:
            raise DataFileError(f"predict.inputs: the image {file} is empty.")
        try:
            with Image.open(file) as image:
                image = image.convert(IMAGE_MODES[channels])
                shrink = image.width >= width and image.height >= height  # area average then
                resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
                image = image.resize((width, height), resample)
        except PermissionError:
            raise DataFileError(
                f"predict.inputs: the image {file} is unreadable: permission denied."
            ) from None
        except UnidentifiedImageError:
            raise DataFileError(
                f"predict.inputs: {file} is not a PNG or JPEG image (wrong format or corrupt)."
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a cut/bad stream
            reason = str(exc).rstrip(".") or type(exc).__name__
            problem = "truncated" if "truncated" in reason or "broken" in reason else "corrupt"
            raise DataFileError(
                f"predict.inputs: the image {file} is {problem} ({reason})."
            ) from None
        pixels = np.asarray(image, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
        images.append(pixels.reshape(height, width, channels).transpose(2, 0, 1))
    return torch.as_tensor(np.stack(images)), [f.name for f in files]


def class_labels(datamodule, num_classes: int) -> list[str]:
    """A label per output class: the data's class names, else its class indices (the original
    indices when data.classes picked a subset, relabelled 0..k-1 for the network)."""
    picked = getattr(datamodule, "classes", None)
    names = getattr(datamodule, "class_names", None)
    if names is not None and len(names) != num_classes and picked:
        names = [names[c] for c in picked]
    if names is not None and len(names) == num_classes:
        return [str(n) for n in names]
    return [str(c) for c in (picked or range(num_classes))]
