"""Losses that need more than a torch.nn class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OneHotMSELoss(nn.Module):
    """Mean squared error between softmax(logits) and the one-hot target."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        return F.mse_loss(logits.softmax(dim=-1), one_hot)
