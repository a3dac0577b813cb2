"""SkipGramTask: word2vec's skip-gram with negative sampling, and what the vectors learned."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.errors import ConfigError
from lightdl.regularizers import Regularizer
from lightdl.tasks.base import SummedEvalTask

VECTORS_FILE, NEIGHBOURS_FILE = "vectors.pt", "neighbours.md"
EVAL_SEED = 1234  # val and test negatives: the same draws every pass, so val/loss is comparable


def negative_sampling_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of -log σ(u_o·v_c) - Σ_k log σ(-u_k·v_c) (Mikolov et al. 2013, eq. 4).

    positive: (B,) scores of the true (centre, context) pairs; negative: (B, K) scores of the
    K sampled words. logsigmoid keeps large scores finite.
    """
    return -(F.logsigmoid(positive) + F.logsigmoid(-negative).sum(dim=-1)).mean()


class SkipGramTask(SummedEvalTask):
    """Trains model=skipgram on (centre, context) batches with the negative-sampling loss.

    K negatives per pair are drawn on the device from `negative_probs` (P_neg ∝ count^0.75,
    data.neg_power) with torch.multinomial, for the whole batch at once. As in most
    implementations (unlike word2vec's C code) a negative equal to the true context is kept.
    val/loss and test/loss use the same seeded negatives on every pass.
    The task has its own loss: a loss option other than the default cross_entropy, label
    smoothing, weight penalties and input noise (made for layers and classes) are refused.
    When fitting ends, the nearest neighbours of `query_words` and the `analogies` are printed
    and written to neighbours.md, and the word vectors to vectors.pt (model.embedding.init of
    rnn, lstm and gru reads it), in the run directory (the trainer's default_root_dir).
    """

    base_metrics = ("train/loss", "val/loss", "test/loss", "lr")

    def __init__(
        self,
        net: nn.Module,
        loss_fn: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        *,
        negative_probs: torch.Tensor | None = None,
        negatives: int = 5,
        query_words: Sequence[str] = (),
        analogies: Sequence[Sequence[str]] = (),
        top_k: int = 8,
        **common: Any,  # the rest of BaseTask's arguments (scheduler, regularizers, ...)
    ) -> None:
        super().__init__(net, loss_fn, optimizer, **common)
        self._refuse(loss_fn, common.get("regularizers", ()))
        if not hasattr(net, "scores"):
            raise ConfigError(
                f"data=words trains word vectors: use model=skipgram, not {type(net).__name__}."
            )
        if negative_probs is None:
            negative_probs = torch.ones(net.input.num_embeddings)
        self.register_buffer("negative_probs", negative_probs.float(), persistent=False)
        self.negatives = negatives
        self.query_words, self.analogies, self.top_k = list(query_words), list(analogies), top_k
        self.register_buffer("train_sums", torch.zeros(2), persistent=False)  # [loss * B, B]
        self.register_buffer("eval_sums", torch.zeros(2), persistent=False)
        self.eval_generator: torch.Generator | None = None

    def _refuse(self, loss_fn: nn.Module, regularizers: Sequence[Regularizer]) -> None:
        if type(loss_fn) is not nn.CrossEntropyLoss or loss_fn.label_smoothing:
            raise ConfigError(
                "data=words trains with its own negative-sampling loss, so the loss group and "
                "label smoothing do not apply; leave loss at its default (cross_entropy)."
            )
        unusable = [*self.augment, *self.input_transforms, *self.penalties, *self.step_hooks]
        if unusable:
            names = ", ".join(sorted({type(r).__name__ for r in unusable}))
            raise ConfigError(
                f"{names} acts on layer weights or real-valued inputs, but model=skipgram has "
                "only embedding tables and reads word ids; use regularizer=dropout or clip_norm."
            )

    @classmethod
    def options(cls, cfg, data) -> dict[str, Any]:
        """K, the negative distribution and the queries from the DataModule (data=words)."""
        if not hasattr(data, "negative_probs"):
            return {}
        return {
            "negative_probs": data.negative_probs,
            "negatives": data.negatives,
            "query_words": data.query_words,
            "analogies": data.analogies,
        }

    @property
    def logged_metrics(self) -> tuple[str, ...]:
        return self.base_metrics

    def draw_negatives(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K) word ids drawn from P_neg on the device, with replacement."""
        drawn = torch.multinomial(
            self.negative_probs, n * self.negatives, replacement=True, generator=generator
        )
        return drawn.view(n, self.negatives)

    def pair_loss(
        self, centre: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        return negative_sampling_loss(*self.net.scores(centre, context, negatives))

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()

    def train_step(self, batch, batch_idx: int) -> torch.Tensor:
        centre, context = batch
        loss = self.pair_loss(centre, context, self.draw_negatives(len(centre)))
        with torch.no_grad():
            self.train_sums[0] += loss.detach() * len(centre)
            self.train_sums[1] += len(centre)
        if self.is_last_batch(batch_idx):
            self.log_epoch("train/loss", self.train_sums[0] / self.train_sums[1])
            self.log_lr()
        return loss

    def _eval_start(self) -> None:
        self.eval_sums.zero_()
        self.eval_generator = torch.Generator(device=self.device).manual_seed(EVAL_SEED)

    def _eval_step(self, batch) -> None:
        centre, context = batch
        negatives = self.draw_negatives(len(centre), self.eval_generator)
        self.eval_sums[0] += self.pair_loss(centre, context, negatives) * len(centre)
        self.eval_sums[1] += len(centre)

    def _log_eval(self, split: str) -> None:
        self.log_epoch(f"{split}/loss", self.eval_sums[0] / self.eval_sums[1])

    def on_fit_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        folder = Path(self.trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.net.save(folder / VECTORS_FILE)
        report = self.report()
        (folder / NEIGHBOURS_FILE).write_text(report)
        print(report, flush=True)

    def report(self) -> str:
        """Markdown: the nearest words to each query word, and each analogy's answers."""
        vocab = set(self.net.vocab)
        lines = ["## Nearest neighbours (cosine similarity of the word vectors)", ""]
        lines += ["| word | neighbours |", "|---|---|"]
        for word in self.query_words:
            if word not in vocab:
                lines.append(f"| {word} | (not in the vocabulary) |")
                continue
            found = self.net.nearest(word, self.top_k)
            lines.append(f"| {word} | {', '.join(f'{w} {s:.2f}' for w, s in found)} |")
        if self.analogies:
            lines += ["", "## Analogies (a : b :: c : ?, nearest to b - a + c)", ""]
            lines += ["| a : b :: c | answers |", "|---|---|"]
            for a, b, c in self.analogies:
                query = f"{a} : {b} :: {c}"
                missing = [w for w in (a, b, c) if w not in vocab]
                if missing:
                    lines.append(f"| {query} | ({', '.join(missing)} not in the vocabulary) |")
                    continue
                found = self.net.analogy(a, b, c, k=3)
                lines.append(f"| {query} | {', '.join(f'{w} {s:.2f}' for w, s in found)} |")
        return "\n".join(lines) + "\n"
