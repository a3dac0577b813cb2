"""Seq2SeqTask: trains an encoder-decoder (model=seq2seq, model=pointer) on (source, target) token
sequences by teacher forcing with scheduled sampling, and scores it by decoding.

Teacher forcing feeds the decoder the true previous token, so in training it never sees its own
mistakes, which at test time it must build on (exposure bias). Scheduled sampling (Bengio et al.,
2015) feeds the model's own previous prediction instead with a probability that grows during
training: `sampling_probability` below, set by model.scheduled_sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lightdl.errors import ConfigError
from lightdl.tasks.base import SummedEvalTask

BOS_ID = 1
SCHEDULES = ("none", "linear", "inverse_sigmoid", "exponential")
POINTER_TASKS = ("copy", "reverse", "sort")


def sampling_probability(
    step: int,
    schedule: str = "none",
    start: float = 0.0,
    end: float = 0.25,
    k: float = 1000.0,
    per: str = "step",
) -> float:
    """The probability of feeding the model's own prediction at `step` (a global step or epoch).

    none: 0 (pure teacher forcing). linear: from start to end over k steps, then end.
    exponential: end - (end - start) * k**step (0 < k < 1: the gap to `end` shrinks by k a step).
    inverse_sigmoid: start + (end - start) * (1 - k / (k + exp(step / k))) (k >= 1; Bengio et
    al.'s teacher-forcing probability k / (k + exp(i / k)) turned around: flat at first, then an
    S-shaped rise, faster for smaller k). `per` is read by the task (step or epoch), not here.
    """
    if schedule == "none":
        return 0.0
    if schedule == "linear":
        return start + (end - start) * min(1.0, step / k)
    if schedule == "exponential":
        return end - (end - start) * k**step
    return start + (end - start) * (1.0 - k / (k + math.exp(min(step / k, 700.0))))


def check_sampling(options: dict | None) -> dict:
    """The scheduled-sampling options with their defaults, or ConfigError naming the bad one."""
    options = dict(options or {})
    known = ("schedule", "start", "end", "k", "per")
    for key in options:
        if key not in known:
            raise ConfigError(
                f"unknown key 'model.scheduled_sampling.{key}'; valid keys: {', '.join(known)}."
            )
    options.setdefault("schedule", "none")
    schedule = options["schedule"]
    if schedule not in SCHEDULES:
        raise ConfigError(
            f"model.scheduled_sampling.schedule must be one of {', '.join(SCHEDULES)}, "
            f"got '{schedule}'."
        )
    for key in ("start", "end"):
        value = options.get(key, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise ConfigError(
                f"model.scheduled_sampling.{key} must be a probability in [0, 1], got {value!r}."
            )
    k = options.get("k", 1000.0)
    rules = {
        "linear": (lambda v: v > 0, "a number of steps > 0"),
        "exponential": (lambda v: 0 < v < 1, "a decay factor in (0, 1)"),
        "inverse_sigmoid": (lambda v: v >= 1, "a number >= 1"),
    }
    if schedule in rules and (isinstance(k, bool) or not isinstance(k, int | float)):
        raise ConfigError(f"model.scheduled_sampling.k must be a number, got {k!r}.")
    if schedule in rules and not rules[schedule][0](k):
        raise ConfigError(
            f"model.scheduled_sampling.k must be {rules[schedule][1]} for the {schedule} "
            f"schedule, got {k!r}."
        )
    if options.get("per", "step") not in ("step", "epoch"):
        raise ConfigError(
            f"model.scheduled_sampling.per must be 'step' or 'epoch', got {options['per']!r}."
        )
    return options


class Seq2SeqTask(SummedEvalTask):
    """Teacher-forced training with scheduled sampling; validation and test by decoding.

    Loss: the `loss` group's cross-entropy (so regularizer=label_smoothing applies) with its
    ignore_index set to the padding id: the mean over real target tokens, <eos> included, padding
    after it ignored. val/loss and test/loss are that loss under teacher forcing; token_acc and
    exact_match score the model's own decoding (net(x): greedy, or beam search with
    model.beam_size > 1): token_acc over the real target tokens, exact_match the fraction of
    sequences right up to and including <eos> (nothing extra after it).
    Training sums (loss, token accuracy under teacher forcing, the sampling probability, the
    fraction of inputs fed back) stay in a device buffer and are logged once per epoch.
    """

    base_metrics = (
        "train/loss",
        "train/token_acc",
        "train/sample_prob",
        "train/fed_back",
        "val/loss",
        "val/token_acc",
        "val/exact_match",
        "lr",
    )

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        *,
        sampling: dict | None = None,
        pad_id: int = 0,
        **common: Any,  # the rest of BaseTask's arguments (scheduler, regularizers, ...)
    ) -> None:
        super().__init__(net, loss_fn, optimizer, **common)
        if not hasattr(net, "teacher_forced"):
            raise ConfigError(
                f"model {type(net).__name__} cannot produce output sequences; sequence-to-sequence "
                "data needs model=seq2seq or model=pointer."
            )
        for fn in (self.loss_fn, self.eval_loss_fn):
            if not isinstance(fn, nn.CrossEntropyLoss):
                raise ConfigError(
                    f"sequence-to-sequence training scores tokens with loss=cross_entropy, "
                    f"got {type(fn).__name__}."
                )
            fn.ignore_index = pad_id
        if self.augment or self.input_transforms:
            raise ConfigError(
                "augment and input-noise regularizers apply to real-valued inputs, but this "
                "data is token ids; use augment=none and no input_noise."
            )
        self.sampling = check_sampling(sampling)
        self.pad_id = pad_id
        # [loss * tokens, correct tokens, tokens, fed back, feedable slots, sum of p, steps, penalty]
        self.register_buffer("train_sums", torch.zeros(8), persistent=False)
        # [loss * tokens, correct tokens, tokens, exact sequences, sequences]
        self.register_buffer("eval_sums", torch.zeros(5), persistent=False)

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        """model.scheduled_sampling (the model ignores it), checked; pointers need rearrangements."""
        from omegaconf import OmegaConf

        sampling = cfg.model.get("scheduled_sampling")
        if OmegaConf.is_config(sampling):
            sampling = OmegaConf.to_container(sampling, resolve=True)
        task = cfg.data.get("task")
        if str(cfg.model.get("_target_", "")).endswith("Pointer") and task not in POINTER_TASKS:
            raise ConfigError(
                f"model=pointer can only output tokens of its input, but data.task={task} needs "
                f"others; use data.task={'|'.join(POINTER_TASKS)} or model=seq2seq."
            )
        return {"sampling": check_sampling(sampling), "pad_id": getattr(data, "spec", data).pad_id}

    def sample_prob(self) -> float:
        """This step's probability of feeding back the model's own prediction."""
        options = dict(self.sampling)
        per = options.pop("per", "step")
        step = self.current_epoch if per == "epoch" else self.global_step
        return sampling_probability(step, **options)

    def _decoder_inputs(self, y: torch.Tensor) -> torch.Tensor:
        """<bos>, then the targets shifted right by one step."""
        return torch.cat([torch.full_like(y[:, :1], BOS_ID), y[:, :-1]], dim=1)

    def _loss(self, loss_fn: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    def train_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        p = self.sample_prob()
        logits = self.net.teacher_forced(x, self._decoder_inputs(y), sample_prob=p)
        loss = self._loss(self.loss_fn, logits, y)
        penalty = self.penalty()
        with torch.no_grad():
            real = y != self.pad_id
            tokens = real.sum()
            fed = self.net.fed_back[:, 1:]
            sums = self.train_sums
            sums[0] += loss.detach() * tokens
            sums[1] += ((logits.argmax(dim=-1) == y) & real).sum()
            sums[2] += tokens
            sums[3] += fed.sum()
            sums[4] += fed.numel()
            sums[5] += p
            sums[6] += 1
            if self.penalties:
                sums[7] += penalty.detach()
        if self.is_last_batch(batch_idx):
            self._log_train_epoch()
        return loss + penalty

    def _log_train_epoch(self) -> None:
        loss, correct, tokens, fed, slots, p_sum, steps, penalty = self.train_sums
        self.log_epoch("train/loss", loss / tokens)
        self.log_epoch("train/token_acc", correct / tokens)
        self.log_epoch("train/sample_prob", p_sum / steps)
        self.log_epoch("train/fed_back", fed / slots.clamp(min=1))
        if self.penalties:
            self.log_epoch("train/penalty", penalty / steps)
        self.log_lr()

    def _eval_step(self, batch) -> None:
        x, y = batch
        logits = self.net.teacher_forced(x, self._decoder_inputs(y))
        loss = self._loss(self.eval_loss_fn, logits, y)
        predicted = self.net(x)
        real = y != self.pad_id
        tokens = real.sum()
        same = predicted == y
        sums = self.eval_sums
        sums[0] += loss * tokens
        sums[1] += (same & real).sum()
        sums[2] += tokens
        sums[3] += same.all(dim=1).sum()
        sums[4] += len(y)

    def _log_eval(self, split: str) -> None:
        loss, correct, tokens, exact, sequences = self.eval_sums
        self.log_epoch(f"{split}/loss", loss / tokens)
        self.log_epoch(f"{split}/token_acc", correct / tokens)
        self.log_epoch(f"{split}/exact_match", exact / sequences)
