"""callbacks=grad_norms: per-layer norms, and the global norm's epoch mean and largest value."""

from __future__ import annotations

import lightning as L
import torch
from conftest import fit_net

from lightdl.callbacks.grad_norms import GradNorms
from lightdl.init import weights


class RecordGlobalNorm(L.Callback):
    """The norm of all weight gradients together at every step, recorded independently."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [w.grad.flatten() for w in weights(pl_module) if w.grad is not None]
        self.norms.append(torch.cat(grads).norm().item())


def test_total_and_max_are_the_global_norms_mean_and_peak(tmp_path):
    record = RecordGlobalNorm()
    _, trainer = fit_net(tmp_path, callbacks=[GradNorms(), record], epochs=1)
    logged = trainer.callback_metrics
    assert len(record.norms) > 5
    assert abs(float(logged["grad_norm/max"]) - max(record.norms)) < 1e-5 * max(record.norms)
    mean = sum(record.norms) / len(record.norms)
    assert abs(float(logged["grad_norm/total"]) - mean) < 1e-4 * mean
    assert float(logged["grad_norm/max"]) > float(logged["grad_norm/total"])


def test_norms_are_measured_before_clipping(tmp_path):
    """With clip_norm at 0.01 the logged norms are the raw gradients' (recorded independently at
    the same hook), far above the cap the optimizer step sees."""
    record = RecordGlobalNorm()
    _, trainer = fit_net(
        tmp_path,
        "regularizer=[clip_norm]",
        "regularizer.clip_norm.max_norm=0.01",
        callbacks=[GradNorms(), record],
        epochs=1,
    )
    mean = sum(record.norms) / len(record.norms)
    assert abs(float(trainer.callback_metrics["grad_norm/total"]) - mean) < 1e-4 * mean
    assert min(record.norms) > 0.1  # every step's raw norm is 10x the cap


def _warnings_after_one_epoch(tmp_path, *overrides: str, **options) -> tuple[GradNorms, dict]:
    callback = GradNorms(**options)
    _, trainer = fit_net(
        tmp_path, *overrides, "+trainer.limit_train_batches=8", callbacks=[callback], epochs=1
    )
    return callback, {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_deep_sigmoid_stack_warns_of_vanishing_gradients(tmp_path, caplog):
    """The issue's acceptance: 10 sigmoid layers of 64 put the first layer's gradient orders of
    magnitude below the last's, and the callback says so (once, in the log and in `warnings`)."""
    torch.set_flush_denormal(True)  # vanishing gradients are subnormal floats: slow on CPU
    with caplog.at_level("WARNING", logger="lightdl"):
        callback, logged = _warnings_after_one_epoch(
            tmp_path, "activation=sigmoid", "model.hidden=[64,64,64,64,64,64,64,64,64,64]"
        )
    assert logged["grad_norm/first_over_last"] < 1e-4
    assert logged["grad_norm/layer_0"] < 1e-4 * logged["grad_norm/layer_10"]
    assert len(callback.warnings) == 1 and "vanishing gradients" in callback.warnings[0]
    assert "vanishing gradients" in caplog.text


def test_relu_with_he_init_does_not_warn(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="lightdl"):
        callback, logged = _warnings_after_one_epoch(
            tmp_path,
            "activation=relu",
            "init=he_normal",
            "model.hidden=[64,64,64,64,64,64,64,64,64,64]",
        )
    assert logged["grad_norm/first_over_last"] > 1e-2
    assert callback.warnings == [] and "gradients" not in caplog.text


def test_a_norm_above_exploding_norm_warns_once(tmp_path):
    callback, logged = _warnings_after_one_epoch(tmp_path, exploding_norm=1e-3)
    assert logged["grad_norm/max"] > 1e-3
    assert len(callback.warnings) == 1 and callback.warnings[0].startswith("exploding gradients")


def test_gans_stepping_d_and_g_apart_are_measured(tmp_path):
    """D and G steps have gradients on different weights: the sums keep one entry per weight."""
    _, trainer = fit_net(
        tmp_path,
        "model=gan",
        "preprocess=none",
        "+trainer.limit_train_batches=3",
        callbacks=[GradNorms()],
        epochs=1,
    )
    assert float(trainer.callback_metrics["grad_norm/total"]) > 0
