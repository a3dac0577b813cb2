"""Pointer network (Vinyals et al., 2015): a decoder whose output at each step is a position of
its input, chosen by attention over the encoder outputs, so its outputs are always input tokens.

Made for outputs that rearrange the input (sort; copy and reverse work too): a softmax over a
fixed vocabulary has to learn which symbol sits where, while pointing only has to learn where to
look. For the shared seq2seq task and decoders the pointing distribution is turned into one over
the vocabulary: a token's probability is the total attention on the positions that hold it, and
<eos> is an extra "end" position. The "logits" returned are the log of those probabilities, so
the cross-entropy on target tokens is the pointer's own likelihood, and greedy and beam
decoding (lightdl.models.seq2seq.Decoding) work unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.data.text import lengths as token_lengths
from lightdl.errors import ConfigError
from lightdl.models.attention import Attention, masked_softmax
from lightdl.models.seq2seq import (
    BOS_ID,
    DECODER_CELLS,
    ENCODERS,
    EOS_ID,
    Decoding,
    Tensors,
    check_beam_size,
    check_seq2seq_spec,
)
from lightdl.nn.embedding import TokenEmbedding
from lightdl.nn.packed import run_packed

TINY = 1e-9  # added to token probabilities before the log: unreachable tokens get log(1e-9)


class Pointer(Decoding):
    """Encoder RNN over the packed source; decoder RNN whose additive attention over the source
    positions (plus a learned end position meaning <eos>) is the output distribution.

    Each step the decoder reads the encoder output at the position it pointed to last (a learned
    start vector first). A position already pointed to is masked, as in pointer networks for
    sorting and tours: the decoder reads a token, the first not-yet-used position holding it is
    marked used, so repeated symbols are emitted as often as they occur and no more.
    beam_size, scheduled_sampling, activation: as in model=seq2seq.
    """

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "lstm",
        hidden_size: int = 128,
        embedding_dim: int = 32,
        beam_size: int = 1,
        scheduled_sampling: dict | None = None,
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_seq2seq_spec(spec, "pointer")
        if cell not in ENCODERS:
            raise ConfigError(f"model.cell must be one of {', '.join(ENCODERS)}, got '{cell}'.")
        check_beam_size(beam_size)
        self.pad_id, self.target_len, self.beam_size = spec.pad_id, spec.seq_len, beam_size
        self.vocab_size, self.cell = spec.vocab_size, cell
        self.embed = TokenEmbedding(spec, embedding_dim)
        self.encoder = ENCODERS[cell](embedding_dim, hidden_size, batch_first=True)
        self.end = nn.Parameter(torch.randn(hidden_size) * 0.1)  # the <eos> "position"
        self.go = nn.Parameter(torch.randn(hidden_size) * 0.1)  # the first decoder input
        self.decoder = DECODER_CELLS[cell](hidden_size, hidden_size)
        self.attention = Attention("additive", hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def start(self, x: torch.Tensor) -> tuple[Tensors, Tensors]:
        """memory: (source ids, keys (N, S + 1, H), projected keys, valid positions);
        state: the decoder cell state, then the (N, S + 1) mask of positions already used."""
        n, s = x.shape
        lengths = token_lengths(x, self.pad_id)
        out, final = run_packed(self.encoder, self.dropout(self.embed(x)), lengths)
        keys = torch.cat([out, self.end.expand(n, 1, -1)], dim=1)
        valid = torch.arange(s + 1, device=x.device) < lengths[:, None]
        valid[:, s] = True
        final = final if isinstance(final, tuple) else (final,)
        used = torch.zeros(n, s + 1, dtype=torch.bool, device=x.device)
        return (x, keys, self.attention.prepare(keys), valid), (*(f[-1] for f in final), used)

    def step(self, memory: Tensors, token: torch.Tensor, state: Tensors):
        x, keys, prepared, valid = memory
        *cells, used = state
        n, s = x.shape
        rows = torch.arange(n, device=x.device)
        match = (x == token[:, None]) & ~used[:, :s] & valid[:, :s]
        found = match.any(dim=1)
        position = torch.where(found, match.int().argmax(dim=1), s)  # first unused match, or end
        used = used.clone()
        used[rows, position] |= found
        inputs = torch.where(
            (token == BOS_ID)[:, None], self.go.expand(n, -1), keys[rows, position]
        )
        new = self.decoder(self.dropout(inputs), tuple(cells) if len(cells) == 2 else cells[0])
        cells = new if isinstance(new, tuple) else (new,)
        self.weights = masked_softmax(self.attention.scores(cells[0], prepared), valid & ~used)
        ids = torch.cat([x, torch.full((n, 1), EOS_ID, dtype=x.dtype, device=x.device)], dim=1)
        probs = torch.zeros(n, self.vocab_size, device=x.device, dtype=self.weights.dtype)
        probs = probs.scatter_add(1, ids, self.weights)
        return (probs + TINY).log(), (*cells, used)
