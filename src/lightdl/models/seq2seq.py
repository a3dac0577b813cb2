"""Encoder-decoder RNN (sequence to sequence) with optional attention, greedy and beam decoding.

The encoder reads the padded source as packed sequences (padding never enters its state); the
decoder starts from the encoder's final state and, one output token at a time, reads the previous
token's embedding (and the attention context over the encoder outputs) and predicts the next.
Decoding runs `spec.seq_len` steps (the data's target length, <eos> included).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import log_softmax

from lightdl.data.spec import DataSpec
from lightdl.data.text import lengths as token_lengths
from lightdl.errors import ConfigError
from lightdl.models.attention import SCORES, Attention
from lightdl.nn.embedding import TokenEmbedding
from lightdl.nn.packed import run_packed

BOS_ID, EOS_ID = 1, 2  # lightdl.data.sequence_tasks: 0 <pad>, 1 <bos>, 2 <eos>
ENCODERS = {"gru": nn.GRU, "lstm": nn.LSTM}
DECODER_CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}

Tensors = tuple[torch.Tensor, ...]


def check_seq2seq_spec(spec: DataSpec, model: str) -> None:
    if spec.task != "seq2seq" or spec.kind != "tokens" or spec.seq_len is None:
        raise ConfigError(
            f"model={model} maps token sequences to token sequences, but this data's task is "
            f"'{spec.task}'; use data=sequence_tasks with a seq2seq task."
        )


def check_beam_size(beam_size: object) -> None:
    if not isinstance(beam_size, int) or isinstance(beam_size, bool) or beam_size < 1:
        raise ConfigError(f"model.beam_size must be an integer >= 1, got {beam_size!r}.")


def _pick(tensors: Tensors, index: torch.Tensor) -> Tensors:
    return tuple(t.index_select(0, index) for t in tensors)


class Decoding(nn.Module):
    """Greedy decoding, beam search and teacher forcing (with scheduled sampling) for any model
    that implements two methods over tuples of batch-first tensors:

    `start(x) -> (memory, state)`: what every step reads (encoder outputs, masks) and the
    decoder's first state; `step(memory, token, state) -> (logits (N, V), state)`: read the
    previous token, predict the next. Steps run for `target_len`; <eos> ends a sequence, and
    everything after it is padding (id 0), as in the data's targets.
    """

    pad_id: int = 0
    target_len: int
    beam_size: int = 1

    tasks = ("seq2seq",)
    reads_tokens = True

    def start(self, x: torch.Tensor) -> tuple[Tensors, Tensors]:
        raise NotImplementedError

    def step(self, memory: Tensors, token: torch.Tensor, state: Tensors):
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, target_len) predicted token ids: greedy, or beam search when beam_size > 1."""
        if self.beam_size > 1:
            return self.beam_search(x, self.beam_size)[0]
        return self.greedy(x)[0]

    def teacher_forced(
        self,
        x: torch.Tensor,
        y_in: torch.Tensor,
        sample_prob: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(N, T, V) logits for the decoder inputs y_in (<bos>, then the targets shifted by one).

        Scheduled sampling (Bengio et al., 2015): at each step after the first, each example
        reads its own previous prediction (argmax) instead of the true token with probability
        `sample_prob`. `fed_back` keeps the (N, T) mask of where that happened.
        """
        memory, state = self.start(x)
        n, steps = y_in.shape
        fed = torch.zeros(n, steps, dtype=torch.bool, device=x.device)
        outputs = []
        token = y_in[:, 0]
        for t in range(steps):
            if t > 0:
                token = y_in[:, t]
                if sample_prob > 0:
                    device = generator.device if generator is not None else x.device
                    coin = torch.rand(n, generator=generator, device=device).to(x.device)
                    fed[:, t] = coin < sample_prob
                    token = torch.where(fed[:, t], outputs[-1].detach().argmax(dim=-1), token)
            logits, state = self.step(memory, token, state)
            outputs.append(logits)
        self.fed_back = fed
        return torch.stack(outputs, dim=1)

    @torch.no_grad()
    def greedy(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (N, target_len), sequence log-probability (N,)): the likeliest token each step.

        The log-probability sums the chosen tokens' log-probabilities up to and including <eos>.
        """
        memory, state = self.start(x)
        n = len(x)
        token = torch.full((n,), BOS_ID, dtype=torch.int64, device=x.device)
        finished = torch.zeros(n, dtype=torch.bool, device=x.device)
        score = torch.zeros(n, device=x.device)
        tokens = torch.zeros(n, self.target_len, dtype=torch.int64, device=x.device)
        for t in range(self.target_len):
            logits, state = self.step(memory, token, state)
            logp = log_softmax(logits.float(), dim=-1)
            token = logp.argmax(dim=-1).masked_fill(finished, self.pad_id)
            score = score + logp.gather(1, token[:, None]).squeeze(1).masked_fill(finished, 0.0)
            tokens[:, t] = token
            finished = finished | (token == EOS_ID)
        return tokens, score

    @torch.no_grad()
    def beam_search(
        self, x: torch.Tensor, beam_size: int, keep_greedy: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (N, target_len), sequence log-probability (N,)) of the best of `beam_size`
        hypotheses kept per example, all examples searched together as N * beam_size rows.

        Each step every live hypothesis is extended by every token and the beam_size best
        extensions by total log-probability survive. A hypothesis that emitted <eos> is finished:
        it stays in the beam with its score unchanged (its only extension is padding at
        log-probability 0) and competes with the live ones until the end. Scores are plain sums
        of log-probabilities (no length normalisation), the same quantity greedy maximises one
        step at a time.

        Beam search alone can end below greedy decoding: the greedy prefix can be pushed out of
        the beam by prefixes whose continuations later turn out worse (for up to a quarter of
        the examples of an untrained model, whose next-token distributions are nearly flat; for
        none of a trained one in tests/test_seq2seq.py). keep_greedy adds the greedy sequence to the final
        candidates, so the result is never less likely than greedy's.
        """
        check_beam_size(beam_size)
        memory, state = self.start(x)
        n, k, device = len(x), beam_size, x.device
        memory = tuple(m.repeat_interleave(k, dim=0) for m in memory)
        state = tuple(s.repeat_interleave(k, dim=0) for s in state)
        scores = torch.full((n, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live hypothesis at the start: the others are copies
        token = torch.full((n * k,), BOS_ID, dtype=torch.int64, device=device)
        finished = torch.zeros(n * k, dtype=torch.bool, device=device)
        history = torch.zeros(n * k, self.target_len, dtype=torch.int64, device=device)
        offsets = (torch.arange(n, device=device) * k)[:, None]
        for t in range(self.target_len):
            logits, state = self.step(memory, token, state)
            logp = log_softmax(logits.float(), dim=-1)
            vocab = logp.shape[1]
            done = torch.full_like(logp, float("-inf"))
            done[:, self.pad_id] = 0.0
            logp = torch.where(finished[:, None], done, logp)
            candidates = (scores.reshape(-1, 1) + logp).reshape(n, k * vocab)
            scores, index = candidates.topk(k, dim=1)
            rows = (index // vocab + offsets).reshape(-1)
            token = (index % vocab).reshape(-1)
            state, history, finished = _pick(state, rows), history[rows], finished[rows]
            history[:, t] = token
            finished = finished | (token == EOS_ID)
            if t % 4 == 3 and bool(finished.all()):  # an occasional host sync to stop early
                break
        best = scores.argmax(dim=1)
        pick = torch.arange(n, device=device) * k + best
        tokens, score = history[pick], scores.gather(1, best[:, None]).squeeze(1)
        if keep_greedy and k > 1:
            greedy_tokens, greedy_score = self.greedy(x)
            better = greedy_score > score
            tokens = torch.where(better[:, None], greedy_tokens, tokens)
            score = torch.where(better, greedy_score, score)
        return tokens, score


class Seq2Seq(Decoding):
    """RNN encoder-decoder over a shared token embedding.

    cell: gru | lstm (encoder and decoder). attention: none (the decoder sees the source only
    through the encoder's final state), dot or general (Luong scores), additive (Bahdanau);
    with attention the decoder reads [previous token embedding; previous context] and predicts
    from [new state; its context over the encoder outputs] (`weights` keeps the last step's). beam_size: 1 decodes greedily, more runs a beam
    search (forward, validation and test). scheduled_sampling: read by the task
    (lightdl.tasks.seq2seq), not the model; accepted here so the model config can hold it.
    activation: unused (the cells have their own nonlinearities).
    """

    def __init__(
        self,
        spec: DataSpec,
        cell: str = "gru",
        hidden_size: int = 128,
        embedding_dim: int = 64,
        attention: str = "additive",
        beam_size: int = 1,
        scheduled_sampling: dict | None = None,
        activation=None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_seq2seq_spec(spec, "seq2seq")
        if cell not in ENCODERS:
            raise ConfigError(f"model.cell must be one of {', '.join(ENCODERS)}, got '{cell}'.")
        if attention not in ("none", *SCORES):
            raise ConfigError(
                f"model.attention must be one of none, {', '.join(SCORES)}, got '{attention}'."
            )
        check_beam_size(beam_size)
        self.pad_id, self.target_len, self.beam_size = spec.pad_id, spec.seq_len, beam_size
        self.cell = cell
        self.embed = TokenEmbedding(spec, embedding_dim)
        self.encoder = ENCODERS[cell](embedding_dim, hidden_size, batch_first=True)
        self.attention = (
            None if attention == "none" else Attention(attention, hidden_size, hidden_size)
        )
        context = hidden_size if self.attention is not None else 0
        self.decoder = DECODER_CELLS[cell](embedding_dim + context, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size + context, spec.vocab_size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Tensors]:
        """(outputs (N, S, H), source mask (N, S), final state) over the packed source."""
        lengths = token_lengths(x, self.pad_id)
        out, final = run_packed(self.encoder, self.dropout(self.embed(x)), lengths)
        mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
        final = final if isinstance(final, tuple) else (final,)
        return out, mask, tuple(f[-1] for f in final)

    def start(self, x: torch.Tensor) -> tuple[Tensors, Tensors]:
        out, mask, state = self.encode(x)
        if self.attention is None:
            return (out, mask, out), state
        prepared = self.attention.prepare(out)
        context, self.weights = self.attention(state[0], out, mask, prepared)
        return (out, mask, prepared), (*state, context)

    def step(self, memory: Tensors, token: torch.Tensor, state: Tensors):
        """Luong's input feeding: the context of the previous state is read with the token; the
        new state's context joins it in predicting the next token and is carried to the next step.
        State: (h,) for gru, (h, c) for lstm, then the context when there is attention."""
        out, mask, prepared = memory
        inputs = self.dropout(self.embed(token))
        cells = 2 if self.cell == "lstm" else 1
        if self.attention is not None:
            inputs = torch.cat([inputs, state[-1]], dim=-1)
        new = self.decoder(inputs, state[:cells] if cells == 2 else state[0])
        state = new if isinstance(new, tuple) else (new,)
        features = state[0]
        if self.attention is not None:
            context, self.weights = self.attention(state[0], out, mask, prepared)
            features = torch.cat([features, context], dim=-1)
            state = (*state, context)
        return self.head(self.dropout(features)), state
