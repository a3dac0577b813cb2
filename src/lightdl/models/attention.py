"""Attention of a decoder state over encoder outputs: Luong's dot and general scores, Bahdanau's
additive score, with the source padding masked out.

A decoder reading a long source through one fixed vector forgets its start; attention instead
gives every output step a weighted average of all encoder outputs (the context), weighted by how
well each matches the decoder's current state.
"""

from __future__ import annotations

import torch
from torch import nn

from lightdl.errors import ConfigError

SCORES = ("dot", "general", "additive")


class Attention(nn.Module):
    """score(q, k_j) -> softmax over the unmasked source positions j -> context = sum_j a_j k_j.

    dot: q . k_j (Luong; query and keys of the same width). general: q . W k_j (Luong).
    additive: v . tanh(W_k k_j + W_q q) (Bahdanau). `prepare(keys)` projects the keys once per
    source sequence (general, additive), so each decoder step only projects its query.
    Returns (context (N, key_dim), weights (N, S)); weights are exactly 0 where mask is False.
    """

    def __init__(self, score: str, query_dim: int, key_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        if score not in SCORES:
            raise ConfigError(
                f"model.attention must be one of none, {', '.join(SCORES)}, got '{score}'."
            )
        if score == "dot" and query_dim != key_dim:
            raise ValueError(
                f"dot attention needs query_dim == key_dim, got {query_dim}, {key_dim}"
            )
        self.score = score
        if score == "general":
            self.key_proj = nn.Linear(key_dim, query_dim, bias=False)
        elif score == "additive":
            hidden = hidden or query_dim
            self.key_proj = nn.Linear(key_dim, hidden, bias=False)
            self.query_proj = nn.Linear(query_dim, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """(N, S, key_dim) encoder outputs -> what `scores` compares queries with."""
        return keys if self.score == "dot" else self.key_proj(keys)

    def scores(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """(N, S) unnormalised scores of the (N, query_dim) query against each source position."""
        if self.score == "additive":
            hidden = torch.tanh(prepared + self.query_proj(query).unsqueeze(1))
            return self.v(hidden).squeeze(-1)
        return torch.bmm(prepared, query.unsqueeze(-1)).squeeze(-1)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        prepared: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        prepared = self.prepare(keys) if prepared is None else prepared
        weights = masked_softmax(self.scores(query, prepared), mask)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1), weights


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension where mask is True; exactly 0 elsewhere (a row with
    nothing unmasked is all zeros rather than NaN)."""
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.nan_to_num(scores.softmax(dim=-1) * mask, nan=0.0)
