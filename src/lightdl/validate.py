"""Value checks that run before anything is built: one sentence naming the key, the value and the rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightdl.errors import ConfigError

Rule = tuple[str, Callable[[Any], bool], str]

RULES: list[Rule] = [
    ("optimizer.lr", lambda v: _number(v) and v > 0, "a number > 0"),
    (
        "data.batch_size",
        lambda v: v == "full" or (_integer(v) and v >= 1),
        "an integer >= 1 or 'full'",
    ),
    ("data.val_size", lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    ("data.label_noise", lambda v: _number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
    ("data.scale_lr_with_batch", lambda v: isinstance(v, bool), "true or false"),
    ("data.lr_reference_batch", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("trainer.max_epochs", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("trainer.compile", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.channels_last", lambda v: isinstance(v, bool), "true or false"),
    ("trainer.steps_per_call", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("regularizer.dropout.p", lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    ("regularizer.l2.lam", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularizer.l1.lam", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularizer.elastic.l1", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularizer.elastic.l2", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularizer.weight_decay.lam", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("regularizer.clip_norm.max_norm", lambda v: _number(v) and v > 0, "a number > 0"),
    ("regularizer.clip_value.max_value", lambda v: _number(v) and v > 0, "a number > 0"),
    ("regularizer.label_smoothing.eps", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("regularizer.input_noise.std", lambda v: _number(v) and v >= 0, "a number >= 0"),
    (
        "regularizer.input_noise.decay_rate",
        lambda v: _number(v) and 0 < v <= 1,
        "a number in (0, 1]",
    ),
    ("activation.alpha", lambda v: _number(v), "a number"),
    ("activation.k", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("init.std", lambda v: _number(v) and v > 0, "a number > 0"),
    ("init.gain", lambda v: _number(v) and v > 0, "a number > 0"),
    ("init.a", lambda v: _number(v), "a number"),
    ("init.b", lambda v: _number(v), "a number"),
    ("activation.lower", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("activation.upper", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("scheduler.decay_rate", lambda v: _number(v) and v > 0, "a number > 0"),
    ("scheduler.decay_steps", lambda v: _number(v) and v > 0, "a number > 0"),
    ("scheduler.step_size", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("scheduler.gamma", lambda v: _number(v) and v > 0, "a number > 0"),
    ("scheduler.pct_start", lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    ("scheduler.milestones", lambda v: _widths(v), "a list of integers >= 1"),
    ("callbacks.grad_norms.every_n_steps", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("callbacks.grad_norms.vanishing_ratio", lambda v: _number(v) and v > 0, "a number > 0"),
    ("callbacks.grad_norms.exploding_norm", lambda v: _number(v) and v > 0, "a number > 0"),
    ("data.max_lr_scale", lambda v: _number(v) and v > 0, "a number > 0"),
    ("model.rule", lambda v: v in ("gradient", "perceptron"), "'gradient' or 'perceptron'"),
    ("model.hidden", lambda v: _widths(v), "a list of integers >= 1"),
    ("model.hidden_size", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("model.num_layers", lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    ("diagnosis.underfit_below", lambda v: _number(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    ("diagnosis.overfit_gap", lambda v: _number(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    ("diagnosis.overfit_loss_rise", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("diagnosis.plot", lambda v: isinstance(v, bool), "true or false"),
    ("tune.min_lr", lambda v: _number(v) and v > 0, "a number > 0"),
    ("tune.max_lr", lambda v: _number(v) and v > 0, "a number > 0"),
    ("tune.num_training", lambda v: _integer(v) and v >= 5, "an integer >= 5"),
    ("tune.mode", lambda v: v in ("exponential", "linear"), "one of exponential, linear"),
    ("tune.early_stop_threshold", lambda v: _number(v) and v > 0, "a number > 0 or null"),
    ("monitor_mode", lambda v: v in ("min", "max"), "'min' or 'max'"),
    ("mode", lambda v: v in ("train", "eval", "predict"), "'train', 'eval' or 'predict'"),
]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _widths(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(_integer(w) and w >= 1 for w in value)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that breaks a rule."""
    for group, low, high in (
        ("init", "a", "b"),
        ("activation", "lower", "upper"),
        ("tune", "min_lr", "max_lr"),
    ):
        a, b = OmegaConf.select(cfg, f"{group}.{low}"), OmegaConf.select(cfg, f"{group}.{high}")
        if _number(a) and _number(b) and not a < b:
            raise ConfigError(
                f"{group}.{low} must be below {group}.{high}, got {low}={a}, {high}={b}."
            )
    for key, ok, rule in RULES:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        if not ok(value):
            raise ConfigError(f"{key} must be {rule}, got {value!r}.")
    _check_steps_per_call(cfg)
    from lightdl.accelerate import check_accelerator
    from lightdl.distributed import check as check_distributed

    check_distributed(cfg)  # trainer=ddp: what it cannot be combined with

    check_accelerator(cfg)  # trainer=gpu without a CUDA GPU


def _check_steps_per_call(cfg: DictConfig) -> None:
    """trainer.steps_per_call > 1 steps the optimizer by hand (Lightning's manual optimization),
    which Lightning's gradient accumulation and the lr finder do not support."""
    steps = OmegaConf.select(cfg, "trainer.steps_per_call", default=1)
    if steps == 1:
        return
    accumulate = OmegaConf.select(cfg, "trainer.accumulate_grad_batches", default=1)
    if accumulate not in (None, 1):
        raise ConfigError(
            f"trainer.steps_per_call={steps} cannot be combined with "
            f"trainer.accumulate_grad_batches={accumulate}; set one of them to 1."
        )
    if OmegaConf.select(cfg, "tune.name", default=None):
        raise ConfigError(
            f"tune=lr_find runs Lightning's automatic optimization; run it with "
            f"trainer.steps_per_call=1 (got {steps})."
        )


def check_monitors(monitors: dict[str, str], logged: tuple[str, ...]) -> None:
    """Every monitored metric must be one the task logs; checked before training starts."""
    for key, metric in monitors.items():
        if metric and metric not in logged:
            from lightdl.errors import did_you_mean

            raise ConfigError(
                f"{key}='{metric}' is never logged by this task; it logs "
                f"{', '.join(logged)}.{did_you_mean(metric, list(logged))}"
            )
