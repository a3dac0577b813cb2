"""The one-line verdict on a finished run's learning curves: underfitting, overfitting or fine.

Accuracy-based where the run logs it: underfitting when the final training accuracy is below
`underfit_below`; overfitting when the final train - val accuracy gap is above `overfit_gap`, opened
at the first epoch from which the gap stayed above it. The training accuracy is train/eval_acc (the
train_probe: training examples scored in eval mode, like val/acc) when logged, else train/acc (the
running mean in training mode, dropout and augmentation on). Without accuracy (autoencoders, VAEs)
it reads the losses: overfitting when val/loss ends `overfit_loss_rise` (a fraction) above its
minimum while train/loss kept falling; underfitting is not judged then. GANs (whose logged loss is
G's, against a moving D) get "unknown" unless they log accuracy (SGAN). Epochs are numbered from
0, as in metrics.csv and curves.png.
"""

from __future__ import annotations

import math
from typing import Any

ADVICE = {
    "underfitting": "try a bigger model, more epochs or a better learning rate",
    "overfitting": "try a regularizer (l2, dropout), augmentation, more data or early stopping",
}


def diagnose(
    epochs: list[dict[str, float]],
    underfit_below: float = 0.75,
    overfit_gap: float = 0.05,
    overfit_loss_rise: float = 0.1,
    by_loss: bool = True,
) -> dict[str, Any]:
    """{"verdict", "message", "epoch" (where overfitting opened, else None), and the numbers used}.
    `by_loss=False` (GANs: the task's loss_diagnoses_fit) leaves only the accuracy-based verdict."""
    train_key = next((k for k in ("train/eval_acc", "train/acc") if _has(epochs, k)), None)
    if train_key and _has(epochs, "val/acc"):
        return _by_accuracy(epochs, train_key, underfit_below, overfit_gap)
    if by_loss and _has(epochs, "train/loss") and _has(epochs, "val/loss"):
        return _by_loss(epochs, overfit_loss_rise)
    if not by_loss:
        return _verdict("unknown", "no diagnosis: an adversarial loss says nothing about fit")
    return _verdict("unknown", "no diagnosis: the run logged no train and val accuracy or loss")


def _by_accuracy(epochs, train_key: str, underfit_below: float, overfit_gap: float) -> dict:
    rows = [r for r in epochs if _finite(r, train_key) and _finite(r, "val/acc")]
    last = rows[-1]
    train, val = last[train_key], last["val/acc"]
    numbers = {"train_acc": train, "val_acc": val, "gap": train - val, "train_key": train_key}
    after = f"after {int(last['epoch']) + 1} epochs"
    if train < underfit_below:
        return _verdict(
            "underfitting",
            f"underfitting: {train_key} is {train:.3f} {after} (below {underfit_below:g}); "
            f"{ADVICE['underfitting']}",
            **numbers,
        )
    if train - val > overfit_gap:
        opened = _opened(rows, lambda r: r[train_key] - r["val/acc"] > overfit_gap)
        return _verdict(
            "overfitting",
            f"overfitting: {train_key} {train:.3f} vs val/acc {val:.3f} {after} (gap "
            f"{train - val:.3f} above {overfit_gap:g} since epoch {opened}); {ADVICE['overfitting']}",
            epoch=opened,
            **numbers,
        )
    return _verdict(
        "fine",
        f"fine: {train_key} {train:.3f}, val/acc {val:.3f} {after} (gap {train - val:.3f})",
        **numbers,
    )


def _by_loss(epochs, overfit_loss_rise: float) -> dict:
    rows = [r for r in epochs if _finite(r, "train/loss") and _finite(r, "val/loss")]
    if not rows:
        return _verdict("unknown", "no diagnosis: every logged loss was NaN or infinite")
    best = min(range(len(rows)), key=lambda i: rows[i]["val/loss"])
    last, low = rows[-1], rows[best]["val/loss"]
    rise = (last["val/loss"] - low) / abs(low) if low else 0.0
    numbers = {"val_loss": last["val/loss"], "best_val_loss": low, "rise": rise}
    if rise > overfit_loss_rise and last["train/loss"] < rows[best]["train/loss"]:
        opened = int(rows[best]["epoch"]) + 1
        return _verdict(
            "overfitting",
            f"overfitting: val/loss rose {rise:.0%} above its minimum at epoch {opened - 1} while "
            f"train/loss kept falling; {ADVICE['overfitting']}",
            epoch=opened,
            **numbers,
        )
    return _verdict(
        "fine",
        f"fine: val/loss {last['val/loss']:.4g} is within {overfit_loss_rise:.0%} of its minimum "
        "(no accuracy logged, so underfitting is not judged)",
        **numbers,
    )


def _opened(rows: list[dict], above) -> int:
    """The first epoch from which `above(row)` held to the end."""
    opened = int(rows[-1]["epoch"])
    for row in reversed(rows):
        if not above(row):
            break
        opened = int(row["epoch"])
    return opened


def _verdict(verdict: str, message: str, epoch: int | None = None, **numbers) -> dict[str, Any]:
    return {"verdict": verdict, "message": message, "epoch": epoch, **numbers}


def _has(epochs: list[dict], key: str) -> bool:
    return any(_finite(r, key) for r in epochs)


def _finite(row: dict, key: str) -> bool:
    return key in row and math.isfinite(row[key])
