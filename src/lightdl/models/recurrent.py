"""Recurrent classifiers (Elman RNN, LSTM, GRU) that read any input as a sequence."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.data.spec import DataSpec

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def as_sequence(spec: DataSpec) -> tuple[int, int]:
    """(steps, features per step): images row by row (C*W per row), vectors one feature per step."""
    if spec.kind == "image":
        channels, height, width = spec.input_shape
        return height, channels * width
    if spec.kind == "vector":
        return spec.input_dim, 1
    raise ValueError(f"recurrent models cannot read data of kind '{spec.kind}' yet")


class Recurrent(nn.Module):
    """A recurrent layer stack whose last hidden state (both directions) feeds a linear classifier.

    cell: rnn | lstm | gru. The Elman RNN uses tanh; the activation group does not apply inside cells.
    forget_bias: initial bias of the LSTM forget gate (1.0 lets gradients flow through time early on).
    """

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        forget_bias: float = 1.0,
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            from lightdl.errors import ConfigError

            raise ConfigError(f"model.cell must be one of {', '.join(CELLS)}, got '{cell}'.")
        self.steps, features = as_sequence(spec)
        self.hidden_size = hidden_size
        self.rnn = CELLS[cell](
            features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if cell == "lstm":
            with torch.no_grad():
                for name, param in self.rnn.named_parameters():
                    if name.startswith("bias_ih"):  # gate order: input, forget, cell, output
                        param[hidden_size : 2 * hidden_size].fill_(forget_bias)
                    elif name.startswith("bias_hh"):
                        param[hidden_size : 2 * hidden_size].fill_(0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (N, C, H, W): step t reads image row t across all channels
            x = x.permute(0, 2, 1, 3)
        x = x.reshape(len(x), self.steps, -1)
        out, _ = self.rnn(x)
        last = out[:, -1, : self.hidden_size]
        if self.rnn.bidirectional:
            last = torch.cat([last, out[:, 0, self.hidden_size :]], dim=1)
        return self.head(self.dropout(last))
