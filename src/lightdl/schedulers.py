"""Learning-rate schedules that are not a single torch class."""

from __future__ import annotations

import torch


def exponential_decay(
    optimizer: torch.optim.Optimizer, decay_rate: float = 0.96, decay_steps: int = 100
) -> torch.optim.lr_scheduler.ExponentialLR:
    """lr = lr0 * decay_rate ** (step / decay_steps), stepped every optimizer step."""
    return torch.optim.lr_scheduler.ExponentialLR(
        optimizer, gamma=decay_rate ** (1.0 / decay_steps)
    )
