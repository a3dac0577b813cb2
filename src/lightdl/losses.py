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


class MarginLoss(nn.Module):
    """The capsule network's margin loss (Sabour et al. 2017), on class scores in [0, 1].

    For lengths v and one-hot target T: sum over classes of
    T_k max(0, m_plus - v_k)^2 + lam (1 - T_k) max(0, v_k - m_minus)^2, mean over the batch.
    The true class is pushed above m_plus and every other class below m_minus; lam < 1 keeps the
    many absent classes from shrinking all lengths early in training.
    """

    def __init__(self, m_plus: float = 0.9, m_minus: float = 0.1, lam: float = 0.5) -> None:
        super().__init__()
        self.m_plus, self.m_minus, self.lam = m_plus, m_minus, lam

    def forward(self, lengths: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        present = F.one_hot(target, lengths.shape[-1]).to(lengths.dtype)
        loss = present * F.relu(self.m_plus - lengths) ** 2
        loss = loss + self.lam * (1.0 - present) * F.relu(lengths - self.m_minus) ** 2
        return loss.sum(dim=-1).mean()

    def extra_repr(self) -> str:
        return f"m_plus={self.m_plus}, m_minus={self.m_minus}, lam={self.lam}"
