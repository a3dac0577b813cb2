"""Every option of every group composes, and its node instantiates (discovered from conf/)."""

from __future__ import annotations

import pytest
from conftest import make_cfg
from hydra.utils import instantiate

from lightdl.paths import group_names, options

CASES = [(g, o) for g in group_names() for o in options(g) if g not in ("paths",)]


def test_groups_are_the_designed_ones():
    expected = {
        "data",
        "preprocess",
        "augment",
        "model",
        "activation",
        "loss",
        "optimizer",
        "scheduler",
        "init",
        "regularizer",
        "trainer",
        "callbacks",
        "logger",
        "cure",
        "transfer_stage",
        "experiment",
    }
    assert expected <= set(group_names())


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes(tmp_path, group, option):
    override = f"{group}={option}"
    if group in ("regularizer", "callbacks", "logger", "augment"):
        override = f"{group}=[{option}]"
    cfg = make_cfg(tmp_path, override)
    globals_ = ("experiment", "cure", "compression", "transfer_stage", "hparams_search")
    node = cfg[group] if group not in globals_ else cfg  # global packages
    assert node is not None
    if group in ("activation", "loss", "optimizer", "init", "preprocess"):
        assert instantiate(node) is not None
    if group in ("regularizer", "callbacks", "augment") and option in cfg[group]:
        assert instantiate(cfg[group][option]) is not None


def test_every_option_has_a_header_comment():
    from lightdl.paths import describe

    missing = [f"{g}/{o}" for g, o in CASES if not describe(g, o)]
    assert not missing, f"options without a one-line description: {missing}"
    cut = [f"{g}/{o}" for g, o in CASES if not describe(g, o).endswith((".", ")", ":"))]
    assert not cut, f"first header line is what --help shows; end it as a sentence: {cut}"
