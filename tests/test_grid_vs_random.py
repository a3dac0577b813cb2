"""experiment=grid_vs_random: one invocation runs a grid and a random study per seed on the same trial
budget and writes the comparison of their best scores; the grid tries fewer values of each parameter."""

from __future__ import annotations

import csv

import optuna
import pytest
from conftest import run_cli
from omegaconf import OmegaConf

from lightdl.errors import ConfigError
from lightdl.search import space as search_space
from lightdl.search import study as studies
from lightdl.search.sweeper import OptunaSweeper

# 2 seeds x (a 2x2 grid, 4 random trials), one epoch of 2 batches each
TINY = [
    "experiment=grid_vs_random",
    "hydra.sweeper.n_trials=4",
    "hydra.sweeper.compare.seeds=[0,1]",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "hydra.callbacks.sweep_table.report=false",  # tests/test_report.py covers it
]
LR, DROPOUT = "optimizer.lr", "regularizer.dropout.p"


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """(sweep dir, completed process) of the tiny comparison."""
    tmp = tmp_path_factory.mktemp("gvr")
    sweep = tmp / "sweep"
    result = run_cli(*TINY, f"hydra.sweep.dir={sweep}", cwd=tmp, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return sweep, result


def _csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_table_has_both_arms_for_both_seeds_and_is_printed(compared):
    sweep, result = compared
    rows = _csv(sweep / "grid_vs_random.csv")
    assert [(r["arm"], r["seed"]) for r in rows] == [
        ("grid", "0"),
        ("random", "0"),
        ("grid", "1"),
        ("random", "1"),
    ]
    md = (sweep / "grid_vs_random.md").read_text()
    assert md in result.stdout
    lines = [line for line in md.splitlines() if line.startswith(("| grid ", "| random "))]
    assert len(lines) == 2 and all(" ± " in line for line in lines)  # mean ± std over 2 seeds


def test_each_best_is_the_best_trial_of_its_stored_study(compared):
    sweep, _ = compared
    storage = f"sqlite:///{sweep / 'studies.db'}"
    names = sorted(optuna.get_all_study_names(storage))
    assert names == [f"grid_vs_random_{a}_s{s}" for a in ("grid", "random") for s in (0, 1)]
    for row in _csv(sweep / "grid_vs_random.csv"):
        study = optuna.load_study(study_name=row["study"], storage=storage)
        values = [t.value for t in study.trials if t.state.name == "COMPLETE"]
        assert values and float(row["best"]) == pytest.approx(max(values), abs=1e-12)
        assert study.sampler is not None and row["study"].endswith(f"_s{row['seed']}")


def test_same_budget_but_the_grid_tries_fewer_values(compared):
    sweep, _ = compared
    for row in _csv(sweep / "grid_vs_random.csv"):
        assert row["trials"] == "4"  # the same budget for every study
        expected = 2 if row["arm"] == "grid" else 4
        assert (
            int(row[f"distinct {LR}"]) == expected and int(row[f"distinct {DROPOUT}"]) == expected
        )


def test_every_trial_is_a_job_of_the_sweep_table_seeded_by_its_study(compared):
    sweep, _ = compared
    storage = f"sqlite:///{sweep / 'studies.db'}"
    rows = {r["job"]: r for r in _csv(sweep / "summary.csv")}
    assert len(rows) == 16
    for arm in ("grid", "random"):
        for seed in (0, 1):
            study = optuna.load_study(study_name=f"grid_vs_random_{arm}_s{seed}", storage=storage)
            for trial in study.trials:
                overrides = rows[f"{arm}_s{seed}_{trial.number}"]["overrides"].split()
                assert f"seed={seed}" in overrides
                assert f"{LR}={trial.params[LR]!r}" in overrides
    grid_lrs = {
        float(o.split("=")[1])
        for r in rows.values()
        if r["job"].startswith("grid")
        for o in r["overrides"].split()
        if o.startswith(f"{LR}=")
    }
    assert grid_lrs == {1e-4, 3.0}  # a 2-point grid is the two ends of the range


def test_grid_points_fill_the_budget_log_spaced():
    space = {
        LR: search_space.Param(LR, optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)),
        DROPOUT: search_space.Param(DROPOUT, optuna.distributions.FloatDistribution(0.0, 0.3)),
    }
    cfg = OmegaConf.create({"type": "grid", "seed": 0, "grid_points": None})
    assert studies.grid_points(space, cfg, 9) == 3 == studies.grid_points(space, cfg, 15)
    assert studies.grid(space, 3) == {LR: [1e-4, 0.01, 1.0], DROPOUT: [0.0, 0.15, 0.3]}
    with pytest.raises(ConfigError, match="n_trials=3 is too small"):
        studies.grid_points(space, cfg, 3)


@pytest.mark.parametrize(
    "arms, seeds, words",
    [
        (["grid", "grid"], [0], "distinct samplers"),
        (["grid", "bayes"], [0], "distinct samplers"),
        (["grid", "random"], [0, 0], "distinct integers"),
    ],
)
def test_bad_comparison_is_a_config_error(arms, seeds, words):
    sweeper = OptunaSweeper(
        objective="val/acc",
        direction="max",
        n_trials=4,
        n_jobs=1,
        study_name="x",
        storage="sqlite:///x.db",
        sampler=OmegaConf.create({"type": "random", "seed": 0}),
        pruner=OmegaConf.create({"type": "none"}),
        compare=OmegaConf.create({"arms": arms, "seeds": seeds}),
    )
    with pytest.raises(ConfigError, match=words):
        sweeper._plan("x", [], set())
