"""callbacks=pruning and callbacks=dsd: exact sparsity counted from the weights, masks that hold,
checkpoints that load into a fresh model, and DSD's re-grown dense model."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import fit_net, make_cfg
from lightning.pytorch.callbacks import ModelCheckpoint

from lightdl import build
from lightdl.callbacks.dsd import DenseSparseDense
from lightdl.callbacks.grad_norms import GradNorms
from lightdl.callbacks.masks import effective, prunable
from lightdl.callbacks.pruning import MagnitudePruning
from lightdl.errors import ConfigError
from lightdl.train import train


def layer_weights(model) -> list[torch.Tensor]:
    """The weights each Linear/Conv layer computes with, copied (masked or not)."""
    return [effective(m, name).detach().clone() for m, name in prunable(model)]


def zeros(weights: list[torch.Tensor]) -> list[int]:
    return [int((w == 0).sum()) for w in weights]


class Watch(L.Callback):
    """Independent record, per epoch: the logged metrics, the weights after the mask callback
    set up the epoch (start) and at its end; every training step checks that weights zero at
    the start of the epoch are still zero after the optimizer step."""

    def __init__(self) -> None:
        self.start: list[list[torch.Tensor]] = []
        self.end: list[list[torch.Tensor]] = []
        self.logged: list[dict[str, float]] = []
        self.lrs: list[float] = []
        self.revived = 0  # steps after which a weight zero at epoch start was non-zero
        # weights with a non-zero gradient this epoch (unmasked phases only)
        self.touched: list[torch.Tensor] = []
        self.moments: list[list[torch.Tensor]] = []  # Adam's exp_avg per layer at epoch start

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.touched = []
        self.start.append(layer_weights(pl_module))
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        state = trainer.optimizers[0].state
        params = [getattr(m, "weight_orig", m.weight) for m, _ in prunable(pl_module)]
        self.moments.append([state[p]["exp_avg"].clone() for p in params if p in state])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.phase_masked(pl_module):
            now = layer_weights(pl_module)
            self.revived += sum(
                int((n[s == 0] != 0).sum()) for s, n in zip(self.start[-1], now, strict=True)
            )

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.phase_masked(pl_module):
            grads = [m.weight.grad != 0 for m, _ in prunable(pl_module)]
            self.touched = (
                [t | g for t, g in zip(self.touched, grads, strict=True)] if self.touched else grads
            )

    @staticmethod
    def phase_masked(pl_module) -> bool:
        return any(hasattr(m, "weight_mask") for m, _ in prunable(pl_module))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.end.append(layer_weights(pl_module))
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def sizes(net) -> list[int]:
    return [m.weight.numel() for m, _ in prunable(net)]


def test_global_schedule_ramps_to_the_exact_sparsity_and_pruned_weights_stay_zero(tmp_path):
    pruning = MagnitudePruning(sparsity=0.9, scope="global", start_epoch=1, end_epoch=3)
    watch = Watch()
    net, _ = fit_net(
        tmp_path, "regularizer=[l1,weight_decay]", callbacks=[pruning, watch], epochs=5
    )
    total = sum(sizes(net))
    ramp = [0.0, 0.9 * (1 - (2 / 3) ** 3), 0.9 * (1 - (1 / 3) ** 3), 0.9, 0.9]
    counted = [sum(zeros(e)) for e in watch.end]
    assert counted == [round(s * total) for s in ramp]  # exact, counted from the weights
    logged = [row["sparsity"] for row in watch.logged]
    assert logged == pytest.approx([c / total for c in counted], abs=1e-7)
    assert 0 < logged[1] < logged[2] < logged[3] == pytest.approx(0.9, abs=1e-4)
    assert watch.revived == 0  # no training step (l1 penalty and weight decay on) revived a zero
    for before, after in zip(watch.end[1:-1], watch.end[2:], strict=True):  # a mask only grows
        assert all(((a == 0) | (b != 0)).all() for b, a in zip(before, after, strict=True))
    assert all(not hasattr(m, "weight_orig") for m, _ in prunable(net))  # permanent: plain weights
    assert sum(zeros(layer_weights(net))) == round(0.9 * total)
    global_fractions = [z / n for z, n in zip(zeros(layer_weights(net)), sizes(net), strict=True)]
    assert max(global_fractions) - min(global_fractions) > 0.05  # global: layers differ


def test_layer_scope_prunes_every_layer_to_the_fraction_in_one_shot(tmp_path):
    pruning = MagnitudePruning(sparsity=0.75, scope="layer", start_epoch=0, end_epoch=0)
    watch = Watch()
    net, trainer = fit_net(tmp_path, callbacks=[pruning, GradNorms(), watch], epochs=2)
    for epoch in (0, 1):
        assert zeros(watch.end[epoch]) == [round(0.75 * n) for n in sizes(net)]
    assert watch.revived == 0
    # masked from the first step, yet the gradient norms are measured (on weight_orig)
    assert "grad_norm/total" in trainer.callback_metrics


def test_checkpoints_hold_plain_pruned_weights_and_load_into_a_fresh_model(tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="best", monitor="val/loss")
    last = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", monitor=None)
    pruning = MagnitudePruning(sparsity=0.97, start_epoch=2, end_epoch=2)
    net, trainer = fit_net(tmp_path, callbacks=[pruning, best, last], epochs=4)
    total = sum(sizes(net))
    # the dense epochs 0-1 have the lower val/loss, but a new mask restarts the monitor:
    # best.ckpt is an epoch at the final sparsity
    trainer.test(trainer.lightning_module, datamodule=trainer.datamodule, ckpt_path="best")
    assert "test/acc" in trainer.callback_metrics
    cfg = make_cfg(tmp_path)
    data = build.build_datamodule(cfg)
    for path in (best.best_model_path, last.best_model_path):
        state = torch.load(path, weights_only=False)["state_dict"]
        assert not [k for k in state if k.endswith(("_orig", "_mask"))]
        fresh_net = build.build_net(cfg, data.spec, [])
        task = build.build_task(cfg, fresh_net, data, [])
        task.load_state_dict(state)  # strict: every key matches a plain model
        assert sum(zeros(layer_weights(fresh_net))) == round(0.97 * total)


def test_train_tests_the_best_checkpoint_and_reports_sparsity(tmp_path):
    from lightdl.train import train

    cfg = make_cfg(
        tmp_path,
        "callbacks=[checkpoint,early_stopping,pruning]",
        "callbacks.pruning.start_epoch=0",
        "callbacks.pruning.end_epoch=1",
        "callbacks.pruning.sparsity=0.5",
        "trainer.max_epochs=2",
        "test=true",
        "monitor=sparsity",  # a callback's logged_metrics pass check_monitors
        "monitor_mode=max",
    )
    result = train(cfg, tmp_path / "run")
    assert result["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert "test/acc" in result["metrics"]


def test_dsd_sparse_phase_is_exact_and_the_final_model_regrows_from_zero(tmp_path):
    dsd = DenseSparseDense(dense_epochs=1, sparse_epochs=2, sparsity=0.6, redense_lr_scale=0.1)
    watch = Watch()
    net, trainer = fit_net(tmp_path, callbacks=[dsd, watch], epochs=4)
    n = sizes(net)
    assert [row["dsd/phase"] for row in watch.logged] == [0, 1, 1, 2]
    assert sum(zeros(watch.end[0])) == 0
    for epoch in (1, 2):  # sparse phase: every layer exactly at the fraction, mask held
        assert zeros(watch.end[epoch]) == [round(0.6 * size) for size in n]
        assert watch.logged[epoch]["sparsity"] == pytest.approx(
            sum(zeros(watch.end[epoch])) / sum(n)
        )
    assert watch.revived == 0
    pruned = [w == 0 for w in watch.end[2]]
    regrow = watch.start[3]  # re-dense phase starts: mask removed, pruned weights exactly zero
    assert all((w[p] == 0).all() for w, p in zip(regrow, pruned, strict=True))
    assert all((m[p] == 0).all() for m, p in zip(watch.moments[3], pruned, strict=True))
    optimizer = trainer.optimizers[0]
    assert watch.lrs[3] == pytest.approx(0.1 * watch.lrs[2])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * watch.lrs[0])
    final = layer_weights(net)
    assert all(not hasattr(m, "weight_mask") for m, _ in prunable(net))
    revived = sum(int((w[p] != 0).sum()) for w, p in zip(final, pruned, strict=True))
    assert revived > 0.9 * sum(int(p.sum()) for p in pruned)  # pruned positions grew back
    # every weight still zero never had a gradient (always-blank pixels, units that never fire)
    assert all(not (t & (w == 0)).any() for t, w in zip(watch.touched, final, strict=True))
    assert watch.logged[3]["sparsity"] == pytest.approx(sum(zeros(final)) / sum(n))
    assert watch.logged[3]["sparsity"] < 0.1 * watch.logged[2]["sparsity"]


@pytest.mark.parametrize(
    ("callback", "override", "key"),
    [
        ("pruning", "callbacks.pruning.sparsity=1.0", "callbacks.pruning.sparsity"),
        ("pruning", "callbacks.pruning.sparsity=-0.1", "callbacks.pruning.sparsity"),
        ("pruning", "callbacks.pruning.scope=local", "callbacks.pruning.scope"),
        ("pruning", "callbacks.pruning.end_epoch=0", "callbacks.pruning.end_epoch"),
        ("pruning", "callbacks.pruning.power=0", "callbacks.pruning.power"),
        ("dsd", "callbacks.dsd.sparsity=1.5", "callbacks.dsd.sparsity"),
        ("dsd", "callbacks.dsd.sparse_epochs=0", "callbacks.dsd.sparse_epochs"),
        ("dsd", "callbacks.dsd.redense_lr_scale=0", "callbacks.dsd.redense_lr_scale"),
    ],
)
def test_bad_options_are_one_sentence_naming_the_key(tmp_path, callback, override, key):
    cfg = make_cfg(tmp_path, f"callbacks=[{callback}]", override)
    with pytest.raises(ConfigError) as error:
        build.make(cfg.callbacks, callback)
    message = str(error.value)
    assert key in message and message.count(". ") == 0 and message.endswith(".")


def test_pruning_and_dsd_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="select only one"):
        fit_net(tmp_path, callbacks=[MagnitudePruning(), DenseSparseDense()], epochs=1)


@pytest.mark.parametrize(
    ("row", "epochs", "sparsity", "phase"),
    [("prune_90", 15, 0.9, None), ("dsd", 21, None, 2)],
)
def test_the_presets_rows_reach_what_the_table_reports(tmp_path, row, epochs, sparsity, phase):
    """experiment=compression's rows over their whole schedule (a few batches an epoch): prune_90
    ends at exactly 0.9 sparsity, DSD ends in its dense phase with almost no zero weight."""
    cfg = make_cfg(
        tmp_path,
        f"compression={row}",
        f"trainer.max_epochs={epochs}",
        "+trainer.limit_train_batches=3",
    )
    metrics = train(cfg, tmp_path / "run")["metrics"]
    if sparsity is not None:
        assert metrics["sparsity"] == pytest.approx(sparsity, abs=1e-4)
    else:
        assert metrics["dsd/phase"] == phase and metrics["sparsity"] < 0.1
