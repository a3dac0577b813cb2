"""Bad values of the concept options are refused before anything is built, in one sentence."""

from __future__ import annotations

import pytest
from conftest import make_cfg

from lightdl.errors import ConfigError
from lightdl.validate import validate


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        (["activation=maxout", "activation.k=0"], "activation.k must be an integer >= 1, got 0."),
        (
            ["activation=rrelu", "activation.lower=0.5", "activation.upper=0.1"],
            "activation.lower must be below activation.upper",
        ),
        (["init=uniform", "init.a=1", "init.b=0"], "init.a must be below init.b"),
        (["init=normal", "init.std=0"], "init.std must be a number > 0, got 0."),
        (
            ["scheduler=exponential", "scheduler.decay_steps=0"],
            "scheduler.decay_steps must be a number > 0",
        ),
        (
            ["scheduler=step", "scheduler.step_size=0"],
            "scheduler.step_size must be an integer >= 1",
        ),
        (
            ["scheduler=onecycle", "scheduler.pct_start=1.5"],
            "scheduler.pct_start must be a number in (0, 1)",
        ),
        (
            ["callbacks=[grad_norms]", "callbacks.grad_norms.every_n_steps=0"],
            "every_n_steps must be an integer >= 1",
        ),
        (["regularizer=l1", "regularizer.l1.lam=-1"], "regularizer.l1.lam must be a number >= 0"),
        (
            ["regularizer=label_smoothing", "regularizer.label_smoothing.eps=1"],
            "eps must be a number in [0, 1)",
        ),
        (["model=perceptron", "model.rule=hebb"], "model.rule must be 'gradient' or 'perceptron'"),
        (["data.max_lr_scale=0"], "data.max_lr_scale must be a number > 0"),
    ],
)
def test_bad_value_is_one_sentence(tmp_path, overrides, sentence):
    with pytest.raises(ConfigError) as info:
        validate(make_cfg(tmp_path, *overrides))
    assert sentence in str(info.value) and str(info.value).count(". ") == 0
