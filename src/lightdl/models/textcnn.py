"""Convolutions over time for sequences: TextCNN (Kim 2014) and the time-delay neural network.

Both read right-padded token ids through an embedding and pool over time with the padding masked,
so the same text gives the same output however much padding follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.data.text import lengths as token_lengths
from lightdl.errors import ConfigError
from lightdl.models.recurrent import as_sequence
from lightdl.nn.embedding import make_embedding

POOLS = ("max", "mean")


def _positive_ints(key: str, values: Sequence[int]) -> list[int]:
    values = list(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ConfigError(f"model.{key} must be a non-empty list of integers >= 1, got {values}.")
    return values


def _positive_int(key: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"model.{key} must be an integer >= 1, got {value!r}.")
    return value


def pool_over_time(out: torch.Tensor, mask: torch.Tensor, how: str = "max") -> torch.Tensor:
    """(N, C, T) -> (N, C): the max or mean over the steps where mask (N, T) is True."""
    keep = mask.unsqueeze(1)
    if how == "max":
        return out.masked_fill(~keep, float("-inf")).amax(dim=2)
    return (out * keep).sum(dim=2) / keep.sum(dim=2)


class TextCNN(nn.Module):
    """Kim's CNN for sentence classification: parallel Conv1d filters of several widths slide over
    the word embeddings, each filter's activation is max-pooled over time, the maxima are
    concatenated, dropped out, and a linear layer gives the class scores.

    kernel_sizes: the filter widths in words (n-gram detectors); channels: filters per width.
    Each convolution is 'full' (k - 1 zeros each side), so a text shorter than a filter still has
    windows; a window counts only if it holds at least one real token, and the embeddings of the
    padding are zeroed, so padding never wins the max and extra padding changes nothing.
    embedding: {dim, init, freeze} of the TokenEmbedding (init: saved word vectors).
    """

    reads_tokens = True

    def __init__(
        self,
        spec: DataSpec,
        embedding: dict | None = None,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        channels: int = 100,
        activation: Callable[[], nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spec.kind != "tokens":
            raise ConfigError(
                f"model=textcnn reads token ids (data=text_topics, ...), but this data is "
                f"'{spec.kind}'; use model=tdnn or model=cnn."
            )
        self.kernel_sizes = _positive_ints("kernel_sizes", kernel_sizes)
        channels = _positive_int("channels", channels)
        self.pad_id = spec.pad_id
        self.embed = make_embedding(spec, embedding)
        dim = self.embed.embedding_dim
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, channels, k, padding=k - 1) for k in self.kernel_sizes
        )
        self.act = activation() if activation is not None else nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels * len(self.kernel_sizes), spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = x != self.pad_id
        steps = (self.embed(x) * real.unsqueeze(-1)).transpose(1, 2)  # (N, dim, T)
        length = token_lengths(x, self.pad_id).unsqueeze(
            1
        )  # at least 1: an empty text has a window
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            out = self.act(conv(steps))  # (N, C, T + k - 1): window j covers tokens j-k+1 .. j
            ends = torch.arange(out.shape[2], device=x.device)
            pooled.append(pool_over_time(out, ends < length + k - 1, "max"))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


class TDNN(nn.Module):
    """Time-delay neural network (Waibel et al. 1989): a stack of dilated Conv1d layers over time,
    so each output step sees a window of `receptive_field` = 1 + sum((kernel_size - 1) * d) input
    steps, then the per-step outputs are pooled over time (max or mean) into a linear classifier.

    Layer i uses dilation dilations[i]; doubling dilations widen the window exponentially with
    depth at a linear cost in weights. The window is read without holes as long as each dilation
    is at most the window of the layers below it (1, 2, 4 with kernel_size 3 are); a larger one
    skips steps inside it (kernel_size 2, dilations [1, 3] read offsets 0, 1, 3 and 4 of 5). Each layer pads only on the left (causal), so output step t
    reads input steps t - receptive_field + 1 .. t and the sequence keeps its length; pooling
    covers the steps up to each text's last token, so padding after it changes nothing.
    Reads token ids through an embedding ({dim, init, freeze}), real-valued (T, F) sequences as F
    channels, images row by row and vectors entry by entry.
    """

    reads_tokens = True

    def __init__(
        self,
        spec: DataSpec,
        embedding: dict | None = None,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 4),
        channels: int = 100,
        pool: str = "max",
        activation: Callable[[], nn.Module] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"model.pool must be one of {', '.join(POOLS)}, got '{pool}'.")
        self.kernel_size = _positive_int("kernel_size", kernel_size)
        self.dilations = _positive_ints("dilations", dilations)
        channels = _positive_int("channels", channels)
        self.pool = pool
        self.pad_id = spec.pad_id
        self.embed = make_embedding(spec, embedding) if spec.kind == "tokens" else None
        try:
            self.steps, features = as_sequence(spec, self.embed.embedding_dim if self.embed else 0)
        except ValueError as exc:
            raise ConfigError(f"model=tdnn cannot read data of kind '{spec.kind}'.") from exc
        self.layers = nn.ModuleList()
        for i, d in enumerate(self.dilations):
            self.layers.append(
                nn.Conv1d(features if i == 0 else channels, channels, self.kernel_size, dilation=d)
            )
        self.acts = nn.ModuleList(
            activation() if activation is not None else nn.ReLU() for _ in self.dilations
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, spec.num_classes)

    @property
    def receptive_field(self) -> int:
        """Input steps one output step depends on: 1 + sum((kernel_size - 1) * dilation)."""
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def _as_steps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, features, T) channels-first steps."""
        if self.embed is not None:
            return (self.embed(x) * (x != self.pad_id).unsqueeze(-1)).transpose(1, 2)
        if x.dim() == 4:  # (N, C, H, W): step t reads image row t across all channels
            x = x.permute(0, 2, 1, 3)
        return x.reshape(len(x), x.shape[1] if x.dim() == 3 else self.steps, -1).transpose(1, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, channels, T): the last layer's output at every step, before pooling."""
        out = self._as_steps(x)
        for conv, act, d in zip(self.layers, self.acts, self.dilations, strict=True):
            out = act(conv(F.pad(out, ((self.kernel_size - 1) * d, 0))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        steps = torch.arange(out.shape[2], device=out.device)
        if self.embed is not None:
            mask = steps < token_lengths(x, self.pad_id).unsqueeze(1)
        else:
            mask = steps.expand(len(out), -1) >= 0  # no padding: every step counts
        return self.head(self.dropout(pool_over_time(out, mask, self.pool)))
