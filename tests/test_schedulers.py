"""Every scheduler option, composed from conf/ and run in a real Trainer, follows its closed-form lr.

Each test records the learning rate each optimizer step actually used (read at batch start, after
the previous step's scheduler update) plus the lr left after the last update, and compares that
sequence with the schedule's formula written out here, independently of the implementation.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
from conftest import make_cfg

import lightdl.tasks.classification as classification
from lightdl import build
from lightdl.paths import options

LR0 = 0.1
EPOCHS, BATCHES = 4, 3
STEPS = EPOCHS * BATCHES


class LrRecorder(L.Callback):
    """lr of param group 0 in effect for each optimizer step, and after the last scheduler update."""

    def __init__(self) -> None:
        self.used: list[float] = []
        self.final: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.used.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module):
        self.final = trainer.optimizers[0].param_groups[0]["lr"]


def _run(tmp_path, scheduler, *overrides, epochs=EPOCHS, batches=BATCHES):
    """Fit the default MLP on digits with sgd(lr=LR0) and `scheduler`; returns the LrRecorder."""
    cfg = make_cfg(
        tmp_path,
        f"scheduler={scheduler}",
        "optimizer=sgd",
        f"optimizer.lr={LR0}",
        f"trainer.max_epochs={epochs}",
        f"trainer.limit_train_batches={batches}",
        "trainer.limit_val_batches=1",
        "model.hidden=[16]",
        *overrides,
    )
    datamodule = build.build_datamodule(cfg)
    L.seed_everything(0, verbose=False)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule.spec, [])
    recorder = LrRecorder()
    trainer = build.build_trainer(cfg, [recorder], [], [], tmp_path)
    trainer.fit(task, datamodule=datamodule)
    assert len(recorder.used) == epochs * batches
    return recorder


def _per_step(of_epoch):
    """A per-epoch formula as the per-step sequence: step s runs in epoch s // BATCHES."""
    return [of_epoch(s // BATCHES) for s in range(STEPS)]


def test_every_option_is_covered_here():
    tested = {
        "none",
        "exponential",
        "step",
        "multistep",
        "linear",
        "cosine",
        "plateau",
        "warmup_cosine",
        "onecycle",
    }
    assert set(options("scheduler")) == tested


def test_none_keeps_lr_constant(tmp_path):
    rec = _run(tmp_path, "none")
    assert rec.used == [LR0] * STEPS and rec.final == LR0


def test_exponential_decays_every_step(tmp_path):
    rec = _run(tmp_path, "exponential", "scheduler.decay_rate=0.5", "scheduler.decay_steps=4")
    expected = [LR0 * 0.5 ** (s / 4) for s in range(STEPS + 1)]
    assert [*rec.used, rec.final] == pytest.approx(expected, rel=1e-6)


def test_step_multiplies_by_gamma_every_step_size_epochs(tmp_path):
    rec = _run(tmp_path, "step", "scheduler.step_size=2", "scheduler.gamma=0.5")
    assert rec.used == pytest.approx(_per_step(lambda e: LR0 * 0.5 ** (e // 2)), rel=1e-9)
    assert rec.final == pytest.approx(LR0 * 0.25)  # after EPOCHS=4 epochs: two drops


def test_multistep_multiplies_by_gamma_at_each_milestone(tmp_path):
    rec = _run(tmp_path, "multistep", "scheduler.milestones=[1,3]", "scheduler.gamma=0.1")
    expected = _per_step(lambda e: LR0 * 0.1 ** sum(e >= m for m in (1, 3)))
    assert rec.used == pytest.approx(expected, rel=1e-9)
    assert sorted(set(rec.used), reverse=True) == pytest.approx([LR0, LR0 * 0.1, LR0 * 0.01])


def test_linear_reaches_final_lr_at_the_last_step(tmp_path):
    rec = _run(tmp_path, "linear", "scheduler.final_lr=0.01")
    expected = [LR0 + (0.01 - LR0) * s / STEPS for s in range(STEPS + 1)]
    assert [*rec.used, rec.final] == pytest.approx(expected, rel=1e-9)


def test_linear_final_factor_scales_lr0(tmp_path):
    rec = _run(tmp_path, "linear", "scheduler.final_factor=0.25")
    expected = [LR0 * (1 - 0.75 * s / STEPS) for s in range(STEPS + 1)]
    assert [*rec.used, rec.final] == pytest.approx(expected, rel=1e-9)


def test_linear_spans_the_run_when_max_epochs_changes(tmp_path):
    rec = _run(tmp_path, "linear", epochs=2)  # final_factor 0: reaches 0 after 2 * BATCHES steps
    steps = 2 * BATCHES
    assert [*rec.used, rec.final] == pytest.approx(
        [LR0 * (1 - s / steps) for s in range(steps + 1)]
    )


def test_cosine_follows_half_a_cosine_over_max_epochs(tmp_path):
    eta_min = 0.01
    rec = _run(tmp_path, "cosine", f"scheduler.eta_min={eta_min}")

    def cosine(e):
        return eta_min + (LR0 - eta_min) * (1 + math.cos(math.pi * e / EPOCHS)) / 2

    assert rec.used == pytest.approx(_per_step(cosine), rel=1e-9)
    assert rec.final == pytest.approx(eta_min)  # T_max = trainer.max_epochs


def _warmup_cosine(s, warmup, eta_min):
    if s < warmup:
        return LR0 * s / warmup
    return eta_min + (LR0 - eta_min) * (1 + math.cos(math.pi * (s - warmup) / (STEPS - warmup))) / 2


def test_warmup_cosine_warms_up_linearly_then_follows_a_cosine(tmp_path):
    rec = _run(tmp_path, "warmup_cosine", "scheduler.warmup_steps=3", "scheduler.eta_min=0.001")
    expected = [_warmup_cosine(s, 3, 0.001) for s in range(STEPS + 1)]
    assert [*rec.used, rec.final] == pytest.approx(expected, rel=1e-9)
    assert rec.used[:4] == pytest.approx([0.0, LR0 / 3, 2 * LR0 / 3, LR0])
    assert rec.final == pytest.approx(0.001)


def test_warmup_fraction_is_a_share_of_the_run(tmp_path):
    rec = _run(tmp_path, "warmup_cosine", "scheduler.warmup_fraction=0.25")  # 0.25 * 12 = 3 steps
    assert [*rec.used, rec.final] == pytest.approx(
        [_warmup_cosine(s, 3, 0.0) for s in range(STEPS + 1)], rel=1e-9, abs=1e-12
    )


def test_onecycle_rises_to_max_lr_then_anneals(tmp_path):
    cfg = make_cfg(tmp_path, "scheduler=onecycle", f"optimizer.lr={LR0}")
    assert cfg.scheduler.max_lr == LR0  # the peak defaults to the optimizer's lr
    pct, div, final_div = 0.25, 10.0, 100.0
    rec = _run(
        tmp_path,
        "onecycle",
        f"scheduler.pct_start={pct}",
        f"scheduler.div_factor={div}",
        f"scheduler.final_div_factor={final_div}",
    )
    start, low = LR0 / div, LR0 / div / final_div
    peak_step = pct * STEPS - 1  # phase 1 ends here, phase 2 at the last step (STEPS - 1)

    def anneal(a, b, frac):  # cosine from a (frac 0) to b (frac 1)
        return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2

    def one_cycle(s):
        if s <= peak_step:
            return anneal(start, LR0, s / peak_step)
        return anneal(LR0, low, (s - peak_step) / (STEPS - 1 - peak_step))

    assert rec.used == pytest.approx([one_cycle(s) for s in range(STEPS)], rel=1e-9)
    assert rec.used[0] == pytest.approx(start) and max(rec.used) == pytest.approx(LR0)
    assert rec.used[-1] == pytest.approx(low)


class ScriptedValLoss(classification.ClassificationTask):
    """Logs a scripted val/loss per epoch instead of the real one, to drive the plateau schedule."""

    script: tuple[float, ...] = ()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.script[self.current_epoch], on_epoch=True, batch_size=1)


def test_plateau_cuts_lr_after_patience_epochs_without_improvement(tmp_path, monkeypatch):
    # patience 1: the 2nd epoch in a row without improvement cuts lr by `factor` (at that epoch's
    # end), and the count starts again. Epochs 2,3 stall -> cut before 4; epochs 4,5 stall -> cut
    # before 6; epoch 6 improves; epoch 7 is one stall only.
    ScriptedValLoss.script = (1.0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7)
    expected_per_epoch = [LR0] * 4 + [LR0 / 2] * 2 + [LR0 / 4] * 2
    monkeypatch.setattr(classification, "ClassificationTask", ScriptedValLoss)
    rec = _run(
        tmp_path,
        "plateau",
        "scheduler.factor=0.5",
        "scheduler.patience=1",
        epochs=8,
        batches=1,
    )
    assert rec.used == pytest.approx(expected_per_epoch, rel=1e-9)


def test_plateau_watches_the_configured_monitor(tmp_path):
    cfg = make_cfg(tmp_path, "scheduler=plateau", "monitor=val/acc", "monitor_mode=max")
    assert build.monitored(cfg, {})["scheduler.monitor"] == "val/acc"  # checked before training
    spec = build.build_datamodule(cfg).spec
    task = build.build_task(cfg, build.build_net(cfg, spec, []), spec, [])
    assert task.scheduler_monitor == "val/acc" and task.scheduler_interval == "epoch"
    assert task.scheduler_factory.keywords["mode"] == "max"
