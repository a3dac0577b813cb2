"""trainer.steps_per_call: several optimizer steps per Lightning training_step call train exactly
as one step per call does (same weights, same step count), with clipping, lr schedules, max_steps
and the NaN guard applied per step."""

from __future__ import annotations

import pytest
import torch
from conftest import fit_net, make_cfg

from lightdl import build
from lightdl.data.batches import Chunks
from lightdl.errors import ConfigError
from lightdl.train import train
from lightdl.validate import validate

# digits: 20 training batches of 64 an epoch, so chunks of 3 are six of 3 and one of 2.
CASES = {
    "plain": [],
    "clip_norm": ["regularizer=clip_norm", "regularizer.clip_norm.max_norm=0.05"],
    "onecycle (per step)": ["scheduler=onecycle"],
    "step (per epoch)": ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.3"],
    "plateau": ["scheduler=plateau", "scheduler.patience=0", "scheduler.threshold=0.5"],
    "l1 penalty": ["regularizer=l1"],
}


def _weights(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("extra", CASES.values(), ids=CASES.keys())
def test_chunks_of_steps_train_exactly_like_one_step_per_call(tmp_path, extra):
    one, one_trainer = fit_net(tmp_path / "one", *extra, epochs=3)
    many, many_trainer = fit_net(tmp_path / "many", *extra, "trainer.steps_per_call=3", epochs=3)
    assert many_trainer.global_step == one_trainer.global_step == 60
    one_lr = one_trainer.optimizers[0].param_groups[0]["lr"]
    assert many_trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(one_lr)
    for name, value in _weights(one).items():
        torch.testing.assert_close(_weights(many)[name], value, rtol=1e-5, atol=1e-6)
    for key in ("train/loss", "val/loss", "val/acc"):
        assert float(many_trainer.callback_metrics[key]) == pytest.approx(
            float(one_trainer.callback_metrics[key]), rel=1e-4
        )


def test_clipping_and_schedules_act_under_chunks(tmp_path):
    """The cases above could all be no-ops; here each setting changes the chunked run."""
    base, _ = fit_net(tmp_path / "base", "trainer.steps_per_call=3", epochs=2)
    clipped, _ = fit_net(
        tmp_path / "clip", "trainer.steps_per_call=3", "regularizer=clip_norm",
        "regularizer.clip_norm.max_norm=0.05", epochs=2,
    )  # fmt: skip
    moved = {k: (v - base.state_dict()[k]).abs().max() for k, v in clipped.state_dict().items()}
    assert max(moved.values()) > 1e-3
    _, decayed = fit_net(
        tmp_path / "step", "trainer.steps_per_call=3", "scheduler=step", "scheduler.step_size=1",
        "scheduler.gamma=0.3", epochs=2,
    )  # fmt: skip
    assert decayed.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.3**2)


def test_max_steps_stops_inside_a_chunk(tmp_path):
    _, trainer = fit_net(tmp_path, "trainer.steps_per_call=3", "+trainer.max_steps=7", epochs=3)
    assert trainer.global_step == 7


def test_nan_guard_names_the_same_step_as_one_step_per_call(tmp_path):
    diverging = ["optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=3"]
    one = train(make_cfg(tmp_path / "a", *diverging), tmp_path / "a" / "run")
    many = train(
        make_cfg(tmp_path / "b", *diverging, "trainer.steps_per_call=3"), tmp_path / "b" / "run"
    )
    assert one["status"] == many["status"] == "diverged"
    assert many["diverged"]["step"] == one["diverged"]["step"]


def test_chunks_group_batches_and_keep_the_remainder():
    chunks = Chunks(list(range(11)), 4)
    assert len(chunks) == 3
    assert list(chunks) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["trainer.steps_per_call=0"], "trainer.steps_per_call must be an integer >= 1"),
        (["trainer.steps_per_call=1.5"], "trainer.steps_per_call must be an integer >= 1"),
        (
            ["trainer.steps_per_call=3", "+trainer.accumulate_grad_batches=2"],
            "cannot be combined with trainer.accumulate_grad_batches=2",
        ),
        (["trainer.steps_per_call=3", "tune=lr_find"], "run it with trainer.steps_per_call=1"),
    ],
)
def test_impossible_settings_are_refused_in_one_sentence(tmp_path, overrides, words):
    with pytest.raises(ConfigError, match=words):
        validate(make_cfg(tmp_path, *overrides))


def test_gans_which_step_their_own_optimizers_refuse_it(tmp_path):
    cfg = make_cfg(tmp_path, "model=gan", "trainer.steps_per_call=3")
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    with pytest.raises(ConfigError, match="steps its optimizers itself"):
        build.build_task(cfg, net, datamodule, [])
