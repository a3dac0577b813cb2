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


class OneHotBCELoss(nn.Module):
    """Binary cross-entropy of sigmoid(logits) against the one-hot target, one sigmoid unit per class.

    Each output is an independent yes/no probability (they need not sum to 1); the loss is the
    mean over batch and classes of -[t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))], computed
    from the logits for numerical stability. The predicted class is still the largest output.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, one_hot)
