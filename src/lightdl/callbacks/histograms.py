"""Histograms: weights, gradients and activations of every layer, to TensorBoard and W&B."""

from __future__ import annotations

import lightning as L
import torch

from lightdl.callbacks.layer_hooks import (
    WEIGHT_LAYERS,
    ForwardHooks,
    first_tensor,
    is_activation,
    named_layers,
)
from lightdl.errors import ConfigError

KEY = "callbacks.histograms"
MAX_BINS = 512  # W&B's limit on a histogram's length


class Histograms(L.Callback):
    """Every `every_n_steps` optimizer steps (steps 0, n, 2n...), one histogram per tensor:

    - `weights/<path>` for every trainable parameter (`weights/net.1.weight`, `weights/net.1.bias`),
      as the optimizer is about to update it;
    - `grads/<path>`: its gradient at the same moment (before clipping);
    - `activations/<path>`: the output of each Linear and Conv layer (pre-activations) and of
      each activation module (`activations/net.2` is the first ReLU of an MLP) on that step's
      training batch (a module called several times in one step: its first call).

    Histograms of weights that never move show a layer that does not learn; gradients that
    shrink towards the input show vanishing gradients; activations piled at 0 or at a sigmoid's
    ends show dead or saturated units. They go to a TensorBoard logger (add_histogram_raw: the
    Histograms/Distributions tabs) and a W&B logger (wandb.Histogram, step = trainer/global_step);
    without either (no logger, csv only) the callback says so once and does nothing at all.

    Cost: forward hooks exist only during the sampled steps' training batch. Each tensor is
    binned on its device into `bins` equal bins between its min and max (non-finite values
    left out), and the sampled step's numbers reach the host in one copy; other steps cost
    nothing. The default 50 is Lightning's log_every_n_steps; lower it for small data sets.
    """

    def __init__(self, every_n_steps: int = 50, bins: int = 64) -> None:
        for key, value, low, high in (
            ("every_n_steps", every_n_steps, 1, None),
            ("bins", bins, 1, MAX_BINS),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high and value > high)
            ):
                limit = f"between {low} and {high}" if high else f">= {low}"
                raise ConfigError(f"{KEY}.{key} must be an integer {limit}, got {value!r}.")
        self.every_n_steps, self.bins = every_n_steps, bins
        self.enabled = False  # a TensorBoard or W&B logger to write to (set at fit start)
        self.sampled_steps: list[int] = []
        self._hooks = ForwardHooks()
        self._activations: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._armed_step: int | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.enabled = trainer.is_global_zero and any(_kind(logger) for logger in trainer.loggers)
        if trainer.is_global_zero and not self.enabled:
            print(
                "callbacks=histograms: no tensorboard or wandb logger (logger=[tensorboard] or "
                "logger=[wandb]); no histograms are logged.",
                flush=True,
            )

    def _due(self, step: int) -> bool:
        return self.enabled and step % self.every_n_steps == 0 and step not in self.sampled_steps

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        if not self._due(step) or self._armed_step == step:
            return
        self._armed_step, self._activations = step, {}
        watched = list(
            named_layers(pl_module, lambda m: isinstance(m, WEIGHT_LAYERS) or is_activation(m))
        )
        self._hooks.attach(watched, self._record)

    def _record(self, name: str, module, output) -> None:
        tensor = first_tensor(output)
        if name in self._activations or tensor is None or not tensor.is_floating_point():
            return
        self._activations[name] = binned(tensor, self.bins)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._hooks.remove()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        step = trainer.global_step
        if not self._due(step):
            return
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        params = [(n, p) for n, p in pl_module.named_parameters() if p.requires_grad]
        for name, param in params:
            found[f"weights/{name}"] = binned(param, self.bins)
        for name, param in params:
            if param.grad is not None:
                found[f"grads/{name}"] = binned(param.grad, self.bins)
        if self._armed_step == step:
            found.update({f"activations/{n}": v for n, v in self._activations.items()})
        self._hooks.remove()
        self._activations, self._armed_step = {}, None
        self.sampled_steps.append(step)
        self._write(trainer, step, found)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._hooks.remove()

    def _write(self, trainer, step: int, found: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        if not found:
            return
        stats = torch.stack([s for s, _ in found.values()]).cpu().tolist()  # the one host copy
        counts = torch.stack([c for _, c in found.values()]).cpu().tolist()
        histograms = {}
        for tag, (low, high, num, total, squares), count in zip(found, stats, counts, strict=True):
            if num:  # a tensor with no finite value has no histogram
                histograms[tag] = (low, high, int(num), total, squares, count)
        for logger in trainer.loggers:
            kind = _kind(logger)
            if kind == "tensorboard":
                _to_tensorboard(logger.experiment, histograms, step)
            elif kind == "wandb":
                _to_wandb(logger, histograms, step)


def binned(tensor: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(stats, counts) on the tensor's device, no host sync: stats = [min, max, number, sum,
    sum of squares] over the finite values; counts = how many fall in each of `bins` equal bins
    from min to max (the last bin includes max). All-equal values get the range value +- 0.5."""
    x = tensor.detach().flatten().float()
    finite = torch.isfinite(x)
    low = torch.where(finite, x, torch.inf).amin()
    high = torch.where(finite, x, -torch.inf).amax()
    low_edge, high_edge = _edges_range(low, high)
    index = ((x - low_edge) * (bins / (high_edge - low_edge))).floor().clamp(0, bins - 1)
    index = torch.where(finite, index, bins).long()  # non-finite values: a bin that is dropped
    counts = torch.zeros(bins + 1, dtype=torch.long, device=x.device)
    counts.scatter_add_(0, index, torch.ones_like(index))
    kept = torch.where(finite, x, 0.0)
    stats = torch.stack([low, high, finite.sum().float(), kept.sum(), kept.square().sum()])
    return stats, counts[:bins]


def _edges_range(low, high):
    """The binned range: [low, high], widened by 0.5 each side when high <= low (one value)."""
    if isinstance(low, torch.Tensor):
        flat = high <= low
        return torch.where(flat, low - 0.5, low), torch.where(flat, high + 0.5, high)
    return (low - 0.5, high + 0.5) if high <= low else (low, high)


def edges(low: float, high: float, bins: int) -> list[float]:
    """The bins + 1 bin edges `binned` used for a tensor with this min and max."""
    low, high = _edges_range(low, high)
    return [low + (high - low) * i / bins for i in range(bins + 1)]


def _kind(logger) -> str | None:
    from lightning.pytorch.loggers import TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        return "tensorboard"
    if type(logger).__name__ == "WandbLogger":
        return "wandb"
    return None


def _to_tensorboard(writer, histograms: dict, step: int) -> None:
    """TensorBoard's bucket i holds values up to bucket_limit[i]: a leading empty bucket ends at
    the first edge, then one bucket per bin ending at its right edge."""
    for tag, (low, high, num, total, squares, count) in histograms.items():
        writer.add_histogram_raw(
            tag,
            min=low,
            max=high,
            num=num,
            sum=total,
            sum_squares=squares,
            bucket_limits=edges(low, high, len(count)),
            bucket_counts=[0, *count],
            global_step=step,
        )


def _to_wandb(logger, histograms: dict, step: int) -> None:
    import wandb

    logged = {
        tag: wandb.Histogram(np_histogram=(count, edges(low, high, len(count))))
        for tag, (low, high, _, _, _, count) in histograms.items()
    }
    logger.log_metrics(logged, step=step)
