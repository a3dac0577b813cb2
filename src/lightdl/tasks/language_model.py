"""LanguageModelTask: next-token prediction at every step, with exact perplexity; and sampling."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.text import BOS, EOS, PAD, UNK
from lightdl.errors import ConfigError
from lightdl.tasks.base import SummedEvalTask

SPECIALS = (PAD, UNK, BOS, EOS)  # never sampled: they are not text


class LanguageModelTask(SummedEvalTask):
    """Trains a net mapping (N, T) token ids to (N, T, vocab) logits for the token after each
    (a net that predicts at every step says so with `per_step = True`, as Recurrent does).

    Losses are per token: the loss group's loss on the logits flattened to (N*T, vocab).
    Perplexity is exp(mean negative log-likelihood per token) over the whole split: the NLL sum
    and the token count are accumulated on the device and divided once at the epoch's end (the
    mean of per-batch perplexities would overweight the worst batches, exp being convex).
    Targets equal to pad_id (padding) are not counted in the perplexity and accuracy.
    train/ppl is exp(train/loss), the running mean over the epoch in train mode.
    """

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        *,
        pad_id: int = 0,
        **common: Any,  # the rest of BaseTask's arguments (scheduler, regularizers, ...)
    ) -> None:
        super().__init__(net, loss_fn, optimizer, **common)
        if not getattr(net, "per_step", False):  # Recurrent sets it for language-model data
            raise ConfigError(
                f"model {type(net).__name__} gives one output per example, but a language model "
                "predicts the next token at every step; use model=lstm, gru or rnn."
            )
        if self.augment:
            raise ConfigError(
                "augment transforms images, but a language model reads token ids; use augment=none."
            )
        if self.input_transforms:
            names = ", ".join(type(r).__name__ for r in self.input_transforms)
            raise ConfigError(
                f"regularizer {names} perturbs real-valued inputs, but a language model reads "
                "token ids; drop it (dropout or l2 regularize a language model)."
            )
        self.pad_id = pad_id
        for fn in (self.loss_fn, self.eval_loss_fn):  # padding targets carry no label
            if isinstance(fn, nn.CrossEntropyLoss):
                fn.ignore_index = pad_id
        # val/loss from the loss itself when it is plain cross-entropy: no second pass over logits
        plain = type(self.eval_loss_fn) is nn.CrossEntropyLoss
        self.eval_is_nll = plain and self.eval_loss_fn.label_smoothing == 0.0
        self.eval_is_nll = self.eval_is_nll and self.eval_loss_fn.weight is None
        # [sum of loss * tokens, tokens, sum of penalty * tokens]
        self.register_buffer("train_sums", torch.zeros(3), persistent=False)
        # [sum of eval loss, tokens it covers, sum of NLL, correct next tokens, counted tokens]
        self.register_buffer("eval_sums", torch.zeros(5), persistent=False)

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        return {"pad_id": getattr(data, "spec", data).pad_id}

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        eval_metrics = tuple(f"{s}/{m}" for s in ("val", "test") for m in ("loss", "ppl", "acc"))
        penalty = ("train/penalty",) if self.penalties else ()
        return ("train/loss", "train/ppl", *penalty, *eval_metrics, "lr")

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    def train_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        penalty = self.penalty()
        with torch.no_grad():
            tokens = (y != self.pad_id).sum()
            self.train_sums[0] += loss.detach() * tokens
            self.train_sums[1] += tokens
            if self.penalties:
                self.train_sums[2] += penalty.detach() * tokens
        if self.is_last_batch(batch_idx):
            loss_sum, count, penalty_sum = self.train_sums
            mean = loss_sum / count
            self.log_epoch("train/loss", mean)
            self.log_epoch("train/ppl", mean.exp())
            if self.penalties:
                self.log_epoch("train/penalty", penalty_sum / count)
            self.log_lr()
        return loss + penalty

    def _eval_step(self, batch) -> None:
        x, y = batch
        logits = self.net(x)
        flat, target = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        nll = F.cross_entropy(flat.float(), target, ignore_index=self.pad_id, reduction="sum")
        counted = target != self.pad_id
        sums = self.eval_sums
        if self.eval_is_nll:  # val/loss is the mean NLL itself: log(val/ppl)
            sums[0] += nll
            sums[1] += counted.sum()
        else:
            sums[0] += self.eval_loss_fn(flat, target) * target.numel()
            sums[1] += target.numel()
        sums[2] += nll
        sums[3] += ((flat.argmax(dim=-1) == target) & counted).sum()
        sums[4] += counted.sum()

    def _log_eval(self, split: str) -> None:
        loss_sum, loss_tokens, nll_sum, correct, counted = self.eval_sums
        self.log_epoch(f"{split}/loss", loss_sum / loss_tokens)
        self.log_epoch(f"{split}/ppl", (nll_sum / counted).exp())
        self.log_epoch(f"{split}/acc", correct / counted)


def check_temperature(temperature: Any, key: str = "temperature") -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not (temperature > 0 and math.isfinite(temperature))
    ):
        raise ConfigError(
            f"{key} must be a number > 0 (1 samples the model's distribution as it is, lower is "
            f"more conservative), got {temperature!r}."
        )
    return float(temperature)


def check_prime(prime: str, itos: Sequence[str], key: str = "prime") -> None:
    """The prime must be non-empty and made of vocabulary tokens (characters of the text)."""
    if not prime:
        raise ConfigError(f"{key} must be non-empty text for the model to continue.")
    known = set(itos)
    missing = "".join(sorted({c for c in prime if c not in known}))
    if missing:
        raise ConfigError(
            f"{key}={prime!r} has characters that never occur in the training text ({missing!r}), "
            "so the model cannot read it; use the text's characters."
        )


@torch.no_grad()
def sample(
    net: nn.Module,
    vocab: Sequence[str] | Any,
    prime: str,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> str:
    """`length` characters continuing `prime`, drawn one at a time from softmax(logits / temperature).

    `net` must have step_logits(x, state) -> (logits, state) (model=lstm, gru, rnn on language
    model data): the prime is read in one call, then each drawn token is fed back with the state.
    `vocab` is the id -> token list (DataSpec.vocab) or a Vocab. Low temperatures pick the likeliest
    characters (repetitive), high ones flatten the distribution (diverse, misspelt). Draws use
    `generator` (a CPU torch.Generator), so a fixed seed gives the same sample for the same weights.
    """
    temperature = check_temperature(temperature)
    itos = list(getattr(vocab, "itos", vocab))
    stoi = {token: i for i, token in enumerate(itos)}
    check_prime(prime, itos)
    if not hasattr(net, "step_logits"):
        raise ConfigError(
            f"{type(net).__name__} cannot continue a sequence step by step; sample from "
            "model=lstm, gru or rnn."
        )
    device = next(net.parameters()).device
    banned = torch.tensor([stoi[s] for s in SPECIALS if s in stoi], dtype=torch.long)
    was_training = net.training
    net.eval()
    try:
        ids = torch.tensor([[stoi[c] for c in prime]], device=device)
        logits, state = net.step_logits(ids)
        drawn = []
        for _ in range(length):
            scores = logits[0, -1].float().cpu() / temperature
            scores[banned] = float("-inf")
            token = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)
            drawn.append(int(token))
            logits, state = net.step_logits(token.view(1, 1).to(device), state)
    finally:
        net.train(was_training)
    return "".join(itos[i] for i in drawn)
