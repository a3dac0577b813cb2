"""Recurrent networks (Elman RNN, LSTM, GRU) that read any input as a sequence: image rows,
vector entries, real-valued steps, or token ids through an embedding (packed when padded).

For classification the per-step outputs are pooled into one vector; for language modelling
(spec.task == "language_model") every step predicts the next token."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.data.text import lengths as token_lengths
from lightdl.errors import ConfigError
from lightdl.nn.embedding import make_embedding
from lightdl.nn.packed import run_packed

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
OUTPUTS = ("last", "mean", "max", "attention")


def as_sequence(spec: DataSpec, embedding_dim: int = 0) -> tuple[int, int]:
    """(steps, features per step): images row by row (C*W per row), vectors one feature per step,
    sequences as they are, tokens one embedding vector per step."""
    if spec.kind == "image":
        channels, height, width = spec.input_shape
        return height, channels * width
    if spec.kind == "vector":
        return spec.input_dim, 1
    if spec.kind == "sequence":
        return spec.input_shape[0], spec.input_shape[1]
    if spec.kind == "tokens":
        return spec.input_shape[0], embedding_dim
    raise ValueError(f"recurrent models cannot read data of kind '{spec.kind}'")


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

    def forward(self, out: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(out))).squeeze(-1)
        if mask is not None:  # padding steps get no weight
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=1)
        self.weights = weights.detach()
        return (weights.unsqueeze(-1) * out).sum(dim=1)


class _Sequence(nn.Module):
    """Shared by the recurrent models: read the input as (batch, steps, features) (token ids through
    an embedding), pool the per-step outputs (`last`, `mean`, `max` or `attention`) or keep them
    all (language modelling), dropout, linear head."""

    def _read(
        self, spec: DataSpec, cell: str, output: str, hidden_size: int, embedding: dict | None
    ) -> int:
        """Check the options, make the embedding for token data; the features per step."""
        _check(cell, output)
        self.per_step = spec.task in ("language_model", "tagging")
        self.pad_id = spec.pad_id
        self.embed = make_embedding(spec, embedding) if spec.kind == "tokens" else None
        dim = self.embed.embedding_dim if self.embed is not None else 0
        self.steps, features = as_sequence(spec, dim)
        self.hidden_size = hidden_size
        return features

    def _setup_head(self, spec: DataSpec, width: int, output: str, dropout: float) -> None:
        self.output = output
        self.width = width
        self.attention = AttentionPool(width) if output == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, spec.vocab_size if self.per_step else spec.num_classes)

    def _as_steps(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            return self.embed(x)
        if x.dim() == 4:  # (N, C, H, W): step t reads image row t across all channels
            x = x.permute(0, 2, 1, 3)
        return x.reshape(len(x), x.shape[1] if x.dim() == 3 else self.steps, -1)

    def _pool(
        self,
        out: torch.Tensor,
        bidirectional: bool,
        hidden_size: int,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One vector per sequence; with `lengths`, the padding steps after each end are ignored."""
        mask = None
        if lengths is not None:
            steps = torch.arange(out.shape[1], device=out.device)
            mask = steps < lengths.to(out.device).unsqueeze(1)
        if self.output == "mean":
            if mask is None:
                return out.mean(dim=1)
            return (out * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(dim=1, keepdim=True)
        if self.output == "max":
            if mask is None:
                return out.amax(dim=1)
            return out.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        if self.output == "attention":
            return self.attention(out, mask)
        if lengths is None:  # forward direction: after the last step
            last = out[:, -1, :hidden_size]
        else:
            ends = (lengths.to(out.device) - 1).view(-1, 1, 1).expand(-1, 1, hidden_size)
            last = out[:, :, :hidden_size].gather(1, ends).squeeze(1)
        if bidirectional:  # backward direction: after reading back to the first step
            last = torch.cat([last, out[:, 0, hidden_size:]], dim=1)
        return last


class Recurrent(_Sequence):
    """A recurrent layer stack whose outputs over time, pooled by `output`, feed a linear classifier.

    cell: rnn | lstm | gru. The Elman RNN uses tanh; the activation group does not apply inside cells.
    forget_bias: initial bias of the LSTM forget gate (1.0 lets gradients flow through time early on).
    output: last (the final hidden state; both ends when bidirectional), mean or max over time, or
    attention (learned weights over the steps). Language models predict at every step instead.
    embedding: for token data, {dim, init, freeze} of the TokenEmbedding (init: saved word vectors).
    delay: per-step outputs only (sequence labelling): the label of step t is read from the output
    at step t + delay, after `delay` more inputs (zero steps past the end), so a one-way RNN can use
    that much right context. Refused for language models, where it would show the answer.
    packed: for token data, run the cells on packed sequences so padding never enters the state
    (the lengths are read from the padding); off, padded steps are processed like any other.
    """

    tasks = ("classification", "language_model", "tagging")
    reads_tokens = True

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        forget_bias: float = 1.0,
        output: str = "last",
        embedding: dict | None = None,
        packed: bool = True,
        delay: int = 0,
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = self._read(spec, cell, output, hidden_size, embedding)
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            raise ConfigError(f"model.delay must be an integer >= 0, got {delay!r}.")
        if delay and not self.per_step:
            raise ConfigError(
                "model.delay shifts per-step outputs, but this data has one label per sequence; "
                "use it with per-step labels (data=sequence_tasks data.task=lookahead)."
            )
        if delay and spec.task == "language_model":
            raise ConfigError(
                "model.delay would let a language model read the token it must predict; "
                "keep model.delay=0 for language modelling."
            )
        self.delay = delay
        if spec.task == "language_model" and bidirectional:
            raise ConfigError(
                "model.bidirectional=true cannot predict the next token: the backward direction "
                "has already read it; use a unidirectional model for language modelling."
            )
        self.packed = packed and self.embed is not None and not self.per_step
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
        if self.per_step:
            return self.step_logits(x)[0]
        steps = self._as_steps(x)
        lengths = None
        if self.packed:
            lengths = token_lengths(x, self.pad_id)
            out, _ = run_packed(self.rnn, steps, lengths)
        else:
            out, _ = self.rnn(steps)
        pooled = self._pool(out, self.rnn.bidirectional, self.hidden_size, lengths)
        return self.head(self.dropout(pooled))

    def step_logits(self, x: torch.Tensor, state=None):
        """(N, T, vocab) next-token logits for every step, and the state after the last step
        (pass it back in to continue the sequence: sampling one token at a time)."""
        steps = self._as_steps(x)
        if self.delay:  # `delay` zero steps after the end (a padding embedding is zero too)
            steps = torch.cat([steps, steps.new_zeros(len(steps), self.delay, steps.shape[-1])], 1)
        out, state = self.rnn(steps, state)
        if self.delay:  # the output for step t is the one after reading step t + delay
            out = out[:, self.delay :]
        return self.head(self.dropout(out)), state


class Pyramidal(_Sequence):
    """Pyramidal RNN (Listen, Attend and Spell): each layer after the first reads pairs of
    consecutive outputs of the layer below, concatenated, so it runs over half as many steps.

    An odd last step is dropped; a sequence already down to one step is not halved further.
    `lengths` records the steps each layer ran over in the last forward pass.
    """

    reads_tokens = True

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 3,
        bidirectional: bool = True,
        forget_bias: float = 1.0,
        output: str = "last",
        embedding: dict | None = None,
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = self._read(spec, cell, output, hidden_size, embedding)
        if self.per_step:
            raise ConfigError(
                "model=pyramidal_rnn shortens the sequence, so it cannot predict every next token; "
                "use model=lstm, gru or rnn for language modelling."
            )
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
