"""Recurrent layers over right-padded batches, packed so padding never enters the state."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def run_packed(rnn: nn.RNNBase, steps: torch.Tensor, lengths: torch.Tensor):
    """(outputs (N, T, H), zero after each sequence's end; final state after each one's last real
    step) of `rnn` (batch_first) over steps (N, T, F) whose first lengths[i] steps are real.

    pack_padded_sequence needs the lengths on the CPU: one small host copy per batch.
    """
    packed = pack_padded_sequence(steps, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, final = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps.shape[1])
    return out, final
