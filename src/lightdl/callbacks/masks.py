"""Magnitude masks on the weights of Linear and Conv layers: what callbacks=pruning and dsd share.

Masks are torch.nn.utils.prune's: while a layer is pruned its parameter is `weight_orig` and
`weight` is recomputed as weight_orig * weight_mask before each forward, so the masked
entries get no gradient. On top of torch's reparametrisation:

- the masked entries of weight_orig and of the optimizer's state (momentum, Adam moments) are
  zeroed when a mask is applied, so penalties, weight decay and stale momentum cannot move
  them and a later unmasking (DSD) restarts them from exactly zero;
- checkpoints hold plain `weight` tensors (weight_orig * weight_mask), never the
  weight_orig/weight_mask pair, so they load into a fresh, unpruned model (trainer.test on
  best.ckpt, mode=eval, transfer learning);
- a new mask restarts the monitored checkpoint and early stopping, so best.ckpt is the best
  epoch of the current sparsity, not a denser model from before it.
"""

from __future__ import annotations

import logging

import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils import prune

from lightdl.errors import ConfigError

SCOPES = ("global", "layer")
Pair = tuple[nn.Module, str]


def prunable(model: nn.Module) -> list[Pair]:
    """(module, "weight") for every Linear and Conv layer: the weights pruning acts on
    (biases, norm layers, embeddings and recurrent matrices are left dense)."""
    return [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear | _ConvNd)]


def is_masked(pairs: list[Pair]) -> bool:
    return any(hasattr(m, f"{name}_mask") for m, name in pairs)


def effective(module: nn.Module, name: str) -> torch.Tensor:
    """The weight the layer computes with: weight_orig * weight_mask while masked."""
    if hasattr(module, f"{name}_mask"):
        return getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")
    return getattr(module, name)


@torch.no_grad()
def zero_count(pairs: list[Pair]) -> torch.Tensor:
    """Number of exactly-zero entries over the weights, as a device tensor (no host sync)."""
    return sum((effective(m, name) == 0).sum() for m, name in pairs)


def total_count(pairs: list[Pair]) -> int:
    return sum(getattr(m, name).numel() for m, name in pairs)


@torch.no_grad()
def apply_masks(pairs: list[Pair], sparsity: float, scope: str, optimizers=()) -> None:
    """Mask the round(sparsity * n) smallest-magnitude weights, over all layers together
    (scope=global) or in each layer (scope=layer). Earlier masks are folded in first; their
    entries are zeros, the smallest magnitudes, so a mask only ever grows."""
    unmask(pairs)
    if scope == "global":
        prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in pairs:
            prune.l1_unstructured(module, name, amount=sparsity)
    for module, name in pairs:
        orig, mask = getattr(module, f"{name}_orig"), getattr(module, f"{name}_mask")
        orig.mul_(mask)
        for optimizer in optimizers:
            for value in optimizer.state.get(orig, {}).values():
                if torch.is_tensor(value) and value.shape == orig.shape:
                    value.mul_(mask)


def unmask(pairs: list[Pair]) -> None:
    """Make masks permanent: plain `weight` parameters again (the same Parameter objects, so the
    optimizer keeps them), holding zeros where the mask was."""
    for module, name in pairs:
        if hasattr(module, f"{name}_mask"):
            prune.remove(module, name)


def fold_masks(state_dict: dict[str, torch.Tensor]) -> None:
    """Replace every `<x>_orig`/`<x>_mask` pair of a state dict by `<x>` = orig * mask, in place."""
    for mask_key in [k for k in state_dict if k.endswith("_mask")]:
        base = mask_key.removesuffix("_mask")
        if f"{base}_orig" in state_dict:
            orig, mask = state_dict.pop(f"{base}_orig"), state_dict.pop(mask_key)
            state_dict[base] = orig * mask.to(orig.dtype)


def restart_monitors(trainer) -> None:
    """Forget the best monitored value so far: the next validation writes best.ckpt again and
    early stopping counts its patience from there (the model just changed under them)."""
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            worst = torch.tensor(torch.inf if callback.mode == "min" else -torch.inf)
            callback.best_k_models, callback.kth_best_model_path = {}, ""
            callback.kth_value, callback.best_model_score = worst, None
        elif isinstance(callback, EarlyStopping):
            callback.wait_count = 0
            callback.best_score = torch.tensor(
                torch.inf if callback.monitor_op == torch.lt else -torch.inf
            )


def check_fraction(key: str, value: object) -> None:
    """A sparsity must be a number in [0, 1): 1 would remove every weight."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{key} must be a fraction in [0, 1), got {value!r}.")


def check_scope(key: str, value: object) -> None:
    if value not in SCOPES:
        raise ConfigError(f"{key} must be 'global' or 'layer', got {value!r}.")


def check_epochs(key: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}.")


def check_single(trainer, this: object) -> None:
    """Two mask-keeping callbacks (pruning and dsd) would fight over the same weights."""
    from lightdl.callbacks.dsd import DenseSparseDense
    from lightdl.callbacks.pruning import MagnitudePruning

    others = [
        c
        for c in trainer.callbacks
        if c is not this and isinstance(c, MagnitudePruning | DenseSparseDense)
    ]
    if others:
        raise ConfigError(
            "callbacks.pruning and callbacks.dsd both mask the same weights; select only one of them."
        )


def warn(callback, message: str, *args) -> None:
    """Logged, and kept in the callback's `warnings` list for summary.json."""
    callback.warnings.append(message % args)
    logging.getLogger("lightdl").warning(message, *args)
