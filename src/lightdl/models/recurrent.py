"""Recurrent classifiers (Elman RNN, LSTM, GRU) that read any input as a sequence."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
OUTPUTS = ("last", "mean", "max", "attention")


def as_sequence(spec: DataSpec) -> tuple[int, int]:
    """(steps, features per step): images row by row (C*W per row), vectors one feature per step."""
    if spec.kind == "image":
        channels, height, width = spec.input_shape
        return height, channels * width
    if spec.kind == "vector":
        return spec.input_dim, 1
    raise ValueError(f"recurrent models cannot read data of kind '{spec.kind}' yet")


def _check(cell: str, output: str) -> None:
    if cell not in CELLS:
        raise ConfigError(f"model.cell must be one of {', '.join(CELLS)}, got '{cell}'.")
    if output not in OUTPUTS:
        raise ConfigError(f"model.output must be one of {', '.join(OUTPUTS)}, got '{output}'.")


def _forget_bias(rnn: nn.Module, hidden_size: int, value: float) -> None:
    """LSTM gate order is input, forget, cell, output: set the forget block of the biases."""
    with torch.no_grad():
        for name, param in rnn.named_parameters():
            if name.startswith("bias_ih"):
                param[hidden_size : 2 * hidden_size].fill_(value)
            elif name.startswith("bias_hh"):
                param[hidden_size : 2 * hidden_size].fill_(0.0)


class AttentionPool(nn.Module):
    """Additive attention over time: a_t = softmax_t(v . tanh(W h_t)), output sum_t a_t h_t.

    The weights of the last call are kept (detached) in `weights` for inspection.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.score = nn.Linear(width, 1, bias=False)
        self.weights: torch.Tensor | None = None

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        weights = self.score(torch.tanh(self.proj(out))).squeeze(-1).softmax(dim=1)
        self.weights = weights.detach()
        return (weights.unsqueeze(-1) * out).sum(dim=1)


class _Sequence(nn.Module):
    """Shared by the recurrent classifiers: read the input as (batch, steps, features), pool the
    per-step outputs (`last`, `mean`, `max` or `attention`), dropout, linear head."""

    def _read(self, spec: DataSpec, cell: str, output: str, hidden_size: int) -> int:
        """Check the options, remember the step count; the features per step."""
        _check(cell, output)
        self.steps, features = as_sequence(spec)
        self.hidden_size = hidden_size
        return features

    def _setup_head(self, spec: DataSpec, width: int, output: str, dropout: float) -> None:
        self.output = output
        self.width = width
        self.attention = AttentionPool(width) if output == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, spec.num_classes)

    def _as_steps(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (N, C, H, W): step t reads image row t across all channels
            x = x.permute(0, 2, 1, 3)
        return x.reshape(len(x), self.steps, -1)

    def _pool(self, out: torch.Tensor, bidirectional: bool, hidden_size: int) -> torch.Tensor:
        if self.output == "mean":
            return out.mean(dim=1)
        if self.output == "max":
            return out.amax(dim=1)
        if self.output == "attention":
            return self.attention(out)
        last = out[:, -1, :hidden_size]  # forward direction: after the last step
        if bidirectional:  # backward direction: after reading back to the first step
            last = torch.cat([last, out[:, 0, hidden_size:]], dim=1)
        return last


class Recurrent(_Sequence):
    """A recurrent layer stack whose outputs over time, pooled by `output`, feed a linear classifier.

    cell: rnn | lstm | gru. The Elman RNN uses tanh; the activation group does not apply inside cells.
    forget_bias: initial bias of the LSTM forget gate (1.0 lets gradients flow through time early on).
    output: last (the final hidden state; both ends when bidirectional), mean or max over time, or
    attention (learned weights over the steps).
    """

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        forget_bias: float = 1.0,
        output: str = "last",
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = self._read(spec, cell, output, hidden_size)
        self.rnn = CELLS[cell](
            features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if cell == "lstm":
            _forget_bias(self.rnn, hidden_size, forget_bias)
        self._setup_head(spec, hidden_size * (2 if bidirectional else 1), output, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self._as_steps(x))
        pooled = self._pool(out, self.rnn.bidirectional, self.hidden_size)
        return self.head(self.dropout(pooled))


class Pyramidal(_Sequence):
    """Pyramidal RNN (Listen, Attend and Spell): each layer after the first reads pairs of
    consecutive outputs of the layer below, concatenated, so it runs over half as many steps.

    An odd last step is dropped; a sequence already down to one step is not halved further.
    `lengths` records the steps each layer ran over in the last forward pass.
    """

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 3,
        bidirectional: bool = True,
        forget_bias: float = 1.0,
        output: str = "last",
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = self._read(spec, cell, output, hidden_size)
        if num_layers < 1:
            raise ConfigError(f"model.num_layers must be >= 1, got {num_layers}.")
        self.bidirectional = bidirectional
        width = hidden_size * (2 if bidirectional else 1)
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            layer = CELLS[cell](
                features if i == 0 else 2 * width,
                hidden_size,
                batch_first=True,
                bidirectional=bidirectional,
            )
            if cell == "lstm":
                _forget_bias(layer, hidden_size, forget_bias)
            self.layers.append(layer)
        self.between = nn.Dropout(dropout)
        self.lengths: list[int] = []
        self._setup_head(spec, width, output, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.layers[0](self._as_steps(x))
        self.lengths = [out.shape[1]]
        for layer in self.layers[1:]:
            steps = out.shape[1]
            if steps >= 2:  # (N, T, W) -> (N, T // 2, 2W): neighbours side by side
                out = out[:, : steps - steps % 2].reshape(len(out), steps // 2, 2 * self.width)
            else:
                out = torch.cat([out, out], dim=-1)
            out, _ = layer(self.between(out))
            self.lengths.append(out.shape[1])
        pooled = self._pool(out, self.bidirectional, self.hidden_size)
        return self.head(self.dropout(pooled))
