"""Learning-rate schedules that are not a single torch class.

A factory with a `total_steps` parameter is given the run's number of optimizer steps
(`trainer.estimated_stepping_batches`) by ClassificationTask.configure_optimizers, so schedules
defined over "the whole run" need no hand-computed step count in the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from lightdl.errors import ConfigError


def exponential_decay(
    optimizer: torch.optim.Optimizer, decay_rate: float = 0.96, decay_steps: int = 100
) -> torch.optim.lr_scheduler.ExponentialLR:
    """lr = lr0 * decay_rate ** (step / decay_steps), stepped every optimizer step."""
    return torch.optim.lr_scheduler.ExponentialLR(
        optimizer, gamma=decay_rate ** (1.0 / decay_steps)
    )


def _per_group(
    optimizer: torch.optim.Optimizer, factor: Callable[[float], Callable[[int], float]]
) -> LambdaLR:
    """LambdaLR whose multiplier for each param group is `factor(that group's lr0)(step)`."""
    base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    return LambdaLR(optimizer, [factor(lr0) for lr0 in base_lrs])


def _check_total_steps(total_steps: int) -> None:
    if total_steps < 1:
        raise ConfigError(f"the run has {total_steps} optimizer steps; this schedule needs >= 1.")


def linear_decay(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    final_factor: float = 0.0,
    final_lr: float | None = None,
) -> LambdaLR:
    """lr = lr0 + (lr_end - lr0) * min(step / total_steps, 1), stepped every optimizer step.

    lr_end is `final_lr` when given (an absolute floor), else `final_factor * lr0`.
    """
    _check_total_steps(total_steps)
    if final_lr is None and final_factor < 0:
        raise ConfigError(f"scheduler.final_factor must be >= 0, got {final_factor}.")
    if final_lr is not None and final_lr < 0:
        raise ConfigError(f"scheduler.final_lr must be >= 0, got {final_lr}.")

    def factor(lr0: float) -> Callable[[int], float]:
        end = final_lr / lr0 if final_lr is not None else final_factor
        return lambda step: 1.0 + (end - 1.0) * min(step / total_steps, 1.0)

    return _per_group(optimizer, factor)


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    warmup_steps: int | None = None,
    eta_min: float = 0.0,
) -> LambdaLR:
    """Linear warmup from 0 to lr0 over W steps, then half a cosine from lr0 to eta_min at total_steps.

    W = warmup_steps when given, else round(warmup_fraction * total_steps), at most total_steps.
    step < W:  lr = lr0 * step / W
    step >= W: lr = eta_min + (lr0 - eta_min) * (1 + cos(pi * (step - W) / (total_steps - W))) / 2
    """
    _check_total_steps(total_steps)
    if warmup_steps is None:
        if not 0 <= warmup_fraction < 1:
            raise ConfigError(
                f"scheduler.warmup_fraction must be in [0, 1), got {warmup_fraction}."
            )
        warmup_steps = round(warmup_fraction * total_steps)
    elif warmup_steps < 0:
        raise ConfigError(f"scheduler.warmup_steps must be an integer >= 0, got {warmup_steps}.")
    warmup = min(int(warmup_steps), total_steps)
    decay = total_steps - warmup

    def factor(lr0: float) -> Callable[[int], float]:
        floor = eta_min / lr0

        def at(step: int) -> float:
            if step < warmup:
                return step / warmup
            progress = min((step - warmup) / decay, 1.0) if decay else 1.0
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        return at

    return _per_group(optimizer, factor)
