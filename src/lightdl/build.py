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
from lightdl.paths import chosen
from lightdl.regularizers import Regularizer


def make(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """instantiate(cfg[key]) with "unexpected keyword" turned into a ConfigError naming the key.

    Extra kwargs are passed at call time (through a partial) so objects such as the DataSpec
    reach the target unchanged rather than converted to OmegaConf nodes.
    """
    node = cfg[key]
    if isinstance(node, DictConfig) and "_target_" not in node:
        raise ConfigError(
            f"'{key}' has settings ({', '.join(map(str, node))}) but is not a selected option: "
            "a preset set them and an override replaced its list; select it again or drop them."
        )
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
    """The DataModule, set up; inside a multirun job, the previous job's when the data config is
    the same (lightdl.data.reuse)."""
    from lightdl.data import reuse

    def fresh() -> L.LightningDataModule:
        datamodule = make(cfg, "data", preprocess=make(cfg, "preprocess"))
        datamodule.setup("fit")
        return datamodule

    from lightdl.distributed import world_size

    datamodule = reuse.datamodule(cfg, fresh)
    datamodule.steps_per_call = steps_per_call(cfg)
    datamodule.processes = world_size(cfg)  # trainer=ddp: the global batch for lr_scale
    return datamodule


def steps_per_call(cfg: DictConfig) -> int:
    """trainer.steps_per_call (lightdl's key; validate checks it is an integer >= 1)."""
    return int(cfg.trainer.get("steps_per_call", 1))


def build_regularizers(cfg: DictConfig) -> list[Regularizer]:
    return [make(cfg.regularizer, name) for name in (cfg.regularizer or {})]


def build_augment(cfg: DictConfig, spec=None) -> list:
    """The `augment` list group: callables applied in order to each training batch's inputs.

    With the data's spec, each is checked against it first (image augmentations on vectors fail
    here, before training, with one sentence).
    """
    augment = [make(cfg.augment, name) for name in (cfg.get("augment") or {})]
    for transform in augment:
        if spec is not None and hasattr(transform, "check"):
            transform.check(spec)
    return augment


def _merged(
    regularizers: list[Regularizer], hook: str, cfg: DictConfig
) -> tuple[dict[str, Any], dict[str, str]]:
    """Union of the regularizers' `hook()` dicts, and which option set each key.

    Two options that set the same key (clip_norm and clip_value) cannot be combined.
    """
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    if not regularizers:
        return merged, owner
    names = list(cfg.regularizer or {})
    for name, regularizer in zip(names, regularizers, strict=True):
        for key, value in getattr(regularizer, hook)().items():
            if key in merged:
                raise ConfigError(
                    f"regularizer=[{owner[key]},{name}] cannot be combined: both set {key}; "
                    "choose one."
                )
            merged[key], owner[key] = value, name
    return merged, owner


def _accepted(target: str) -> set[str]:
    """Keyword names the class or function `target` names in its signature.

    A bare **kwargs does not count: nn.Module's own __init__ has one and accepts nothing through it.
    """
    from hydra.utils import get_object

    params = inspect.signature(get_object(target)).parameters.values()
    return {p.name for p in params if p.kind is not p.VAR_KEYWORD}


def _check_accepted(target: str, kwargs: dict, owner: dict[str, str], why: str) -> None:
    """Each regularizer-supplied keyword must be one `target` accepts."""
    accepted = _accepted(target)
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(
                f"regularizer={owner[key]} does not apply to {target.rsplit('.', 1)[-1]}: {why} {key}."
            )


TASK_WORDS = {
    "classification": "classification (one class per example)",
    "language_model": "language modelling (the next token at every step)",
    "tagging": "sequence labelling (a label at every step)",
    "seq2seq": "sequence-to-sequence (an output sequence per input)",
    "skipgram": "skip-gram word vectors",
}


def _models_for(task: str) -> list[str]:
    """The model options whose class declares `task` (classification when it declares none)."""
    from hydra.utils import get_class

    from lightdl.paths import conf_dir, options

    found = []
    for option in options("model"):
        target = OmegaConf.load(conf_dir() / "model" / f"{option}.yaml").get("_target_")
        try:
            model_cls = get_class(target)
            own_objective = getattr(model_cls, "objective", None)  # generative: not a classifier
            if task in getattr(model_cls, "tasks", ("classification",)) and not own_objective:
                found.append(option)
        except Exception:  # noqa: BLE001 - an unimportable option is simply not listed
            continue
    return found


def check_model_fits_data(cfg: DictConfig, spec) -> None:
    """The model must do the data's task and, for token ids, read them through an embedding.

    Models declare `tasks` (default: classification only) and `reads_tokens` (default: False).
    """
    from hydra.utils import get_class

    target = cfg.model._target_
    try:
        model_cls = get_class(target)
    except Exception:  # noqa: BLE001 - instantiation reports a bad target with its own sentence
        return
    name = f"model={chosen('model') or target.rsplit('.', 1)[-1]}"
    tasks = getattr(model_cls, "tasks", ("classification",))
    if spec.task not in tasks:
        doing = " or ".join(TASK_WORDS.get(t, t) for t in tasks)
        raise ConfigError(
            f"{name} does {doing}, but this data is for {TASK_WORDS.get(spec.task, spec.task)}; "
            f"models that do: {', '.join(_models_for(spec.task))}."
        )
    if spec.kind == "tokens" and not getattr(model_cls, "reads_tokens", False):
        raise ConfigError(
            f"{name} reads real-valued inputs, but this data is token ids; use a model with an "
            "embedding: rnn, lstm, gru, pyramidal_rnn, textcnn or tdnn."
        )


def build_net(cfg: DictConfig, spec, regularizers: list[Regularizer]):
    check_model_fits_data(cfg, spec)
    model_kwargs, owner = _merged(regularizers, "model_kwargs", cfg)
    _check_accepted(cfg.model._target_, model_kwargs, owner, "that model has no place for")
    activation = make(cfg, "activation")
    if not getattr(activation(), "differentiable", True) and cfg.model.get("rule") != "perceptron":
        raise ConfigError(
            "activation=step has zero gradient almost everywhere, so backpropagation cannot "
            "train through it; use it with model=perceptron model.rule=perceptron."
        )
    if model_kwargs.get("batchnorm") and cfg.data.get("batch_size") == 1:
        raise ConfigError(
            "regularizer=batchnorm needs batches of more than one example (a batch's variance is "
            "undefined for one), but data.batch_size=1."
        )
    net = make(cfg, "model", spec=spec, activation=activation, **model_kwargs)
    make(cfg, "init")(getattr(net, "initializable", net))  # transfer: the new head only
    return net


def build_loss(cfg: DictConfig, net, regularizers: list[Regularizer]):
    """The `loss` group's loss, with regularizers' settings (label smoothing); or the model's rule."""
    loss_kwargs, owner = _merged(regularizers, "loss_kwargs", cfg)
    if getattr(net, "rule", None) == "perceptron":
        if loss_kwargs:
            raise ConfigError(
                f"model.rule=perceptron has its own criterion: it takes no {', '.join(loss_kwargs)}."
            )
        return net.rule_loss
    _check_accepted(cfg.loss._target_, loss_kwargs, owner, "that loss does not support")
    return make(cfg, "loss", **loss_kwargs) if loss_kwargs else make(cfg, "loss")


TASKS = {  # DataSpec.task -> the LightningModule that trains it
    "classification": "lightdl.tasks.classification.ClassificationTask",
    "language_model": "lightdl.tasks.language_model.LanguageModelTask",
    "tagging": "lightdl.tasks.language_model.LanguageModelTask",  # a label at every step
    "seq2seq": "lightdl.tasks.seq2seq.Seq2SeqTask",
    "skipgram": "lightdl.tasks.skipgram.SkipGramTask",
    # chosen by the model (its `objective`), not the data: generative models read labelled images
    "reconstruction": "lightdl.tasks.reconstruction.ReconstructionTask",
    "adversarial": "lightdl.tasks.adversarial.AdversarialTask",
    "semi_supervised": "lightdl.tasks.semi_supervised.SemiSupervisedGANTask",
}


def build_task(cfg: DictConfig, net, data, regularizers: list[Regularizer]) -> L.LightningModule:
    """The LightningModule for `net`, chosen by the data's task (spec.task), or by the model's
    own `objective` when it has one (autoencoders reconstruct, GANs play D against G).

    `data` is the DataModule, whose spec, lr_scale (data.scale_lr_with_batch) and training probe
    the task uses, or just a DataSpec (no lr scaling, no probe).
    """
    from hydra.utils import get_class

    spec = getattr(data, "spec", data)
    lr_scale = getattr(data, "lr_scale", 1.0)
    if "weight_decay" in (cfg.regularizer or {}) and cfg.optimizer._target_.endswith("AdamW"):
        raise ConfigError(
            "optimizer=adamw already decays weights (optimizer.weight_decay); use "
            "regularizer=weight_decay with optimizer=adam, or adamw alone."
        )

    scheduler_cfg = OmegaConf.to_container(cfg.scheduler, resolve=True) if cfg.scheduler else {}
    interval = scheduler_cfg.pop("interval", "epoch")
    monitor = scheduler_cfg.pop("monitor", None)
    scheduler = None
    if scheduler_cfg:
        cfg_without_keys = OmegaConf.create({"scheduler": scheduler_cfg})
        scheduler = make(cfg_without_keys, "scheduler")  # argument errors now, not at fit time
        if "max_lr" in scheduler.keywords and lr_scale != 1.0:  # onecycle sets the lr itself
            scheduler = functools.partial(scheduler, max_lr=scheduler.keywords["max_lr"] * lr_scale)
    common = dict(
        net=net,
        loss_fn=build_loss(cfg, net, regularizers),
        eval_loss_fn=build_loss(cfg, net, []),  # label smoothing trains; val/loss stays comparable
        optimizer=_scaled(make(cfg, "optimizer"), lr_scale),
        scheduler=scheduler,
        scheduler_interval=interval,
        scheduler_monitor=monitor,
        regularizers=regularizers,
        augment=build_augment(cfg, spec),
    )
    if spec.kind == "tokens":
        _refuse_real_valued_transforms(cfg, regularizers)
    task_name = getattr(net, "objective", None) or spec.task
    _check_unlabelled(data, task_name, net)
    task_cls = get_class(TASKS[task_name])
    if task_name != "classification":
        task = task_cls(**common, **task_cls.options(cfg, data))
    else:
        size = cfg.get("train_probe", 1000)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"train_probe must be an integer >= 0, got {size!r}.")
        probe = data.train_probe(size) if size and hasattr(data, "train_probe") else None
        task = task_cls(**common, num_classes=spec.num_classes, train_probe=probe)
    task.set_steps_per_call(steps_per_call(cfg))
    from lightdl.distributed import world_size

    if world_size(cfg) > 1 and not task.automatic_optimization:
        raise ConfigError(
            f"model={chosen('model') or type(net).__name__} steps its optimizers by hand and leaves some "
            "parameters unused in each step, which DDP refuses; train it with one process."
        )
    return task


def _check_unlabelled(data, task_name: str, net) -> None:
    """data.unlabelled=keep (images with label -1) suits models that read no labels or learn from
    unlabelled images (sgan); model=sgan with few labels wants the unlabelled images kept."""
    keep = getattr(data, "unlabelled", "drop") == "keep"  # with train_per_class (data checks)
    reads_labels = task_name not in ("reconstruction", "adversarial", "semi_supervised") or (
        getattr(net, "conditional", False)
    )
    if keep and reads_labels:
        raise ConfigError(
            f"data.unlabelled=keep leaves training images without labels, which model={chosen('model') or type(net).__name__} "
            "cannot learn from; use data.unlabelled=drop, or model=sgan."
        )
    if (
        task_name == "semi_supervised"
        and getattr(data, "train_per_class", None) is not None
        and (not keep)
    ):
        raise ConfigError(
            "model=sgan learns from unlabelled images too, but data.unlabelled=drop removes them; "
            "set data.unlabelled=keep."
        )


def _refuse_real_valued_transforms(cfg: DictConfig, regularizers: list[Regularizer]) -> None:
    """Input noise changes real values; token ids are labels, not magnitudes. (Augmentations
    check the data themselves: they all need images.)"""
    from lightdl.regularizers import overrides

    names = list(cfg.regularizer or {})
    noisy = [n for n, r in zip(names, regularizers, strict=True) if overrides(r, "transform_input")]
    if noisy:
        raise ConfigError(
            f"regularizer={noisy[0]} changes real-valued inputs, but this data is token ids; "
            "use dropout or a weight penalty instead."
        )


def _scaled(optimizer: functools.partial, lr_scale: float) -> functools.partial:
    if lr_scale == 1.0:
        return optimizer
    return functools.partial(optimizer, lr=optimizer.keywords["lr"] * lr_scale)


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
    from lightdl.accelerate import lightning_trainer
    from lightdl.callbacks.progress import progress_bar

    kwargs, _ = _merged(regularizers, "trainer_kwargs", cfg)
    if steps_per_call(cfg) > 1:  # the task clips (BaseTask.on_before_optimizer_step)
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("gradient_clip")}
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks = [*callbacks, progress_bar()]
    trainer_cfg, speed = lightning_trainer(cfg)  # without lightdl's own trainer keys
    if not trainer_cfg.trainer.get("plugins"):  # checkpoints renamed into place, never half-written
        from lightdl.checkpoint_io import AtomicCheckpointIO

        kwargs = {**kwargs, "plugins": [AtomicCheckpointIO()]}
    return make(
        trainer_cfg,
        "trainer",
        callbacks=[*callbacks, *speed],
        logger=loggers or False,
        default_root_dir=str(run_dir),
        **kwargs,
    )
