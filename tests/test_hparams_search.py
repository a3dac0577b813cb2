"""hparams_search=tpe|random: Optuna trials run as Hydra jobs, unpromising ones are pruned from their
validation curves, the best parameters are saved, and a second invocation continues the stored study."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import optuna
import pytest
import yaml
from conftest import quiet_env

TINY = [
    "data=digits",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=2",
    "train_probe=0",
    "test=false",
    "trainer.enable_progress_bar=false",
]
BAD_PRESET = """# @package _global_
# A broken search space.
defaults:
  - override /hydra/sweeper: lightdl_optuna
hydra:
  mode: MULTIRUN
  sweeper:
    params:
      optimizer.lr: {entry}
"""
# name -> argv after TINY; all run in one fresh process through lightdl's CLI entry, in this order.
# With the preset's seed the second TPE trial draws lr=1.5e-4 with dropout 0.48 and stays at chance while
# the first one learns: the median pruner (active after one completed trial, from epoch 0) stops it.
SCENARIOS = {
    "tpe": [
        "hparams_search=tpe",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
    ],
    "resume_first": [
        "hparams_search=random",
        "hydra.sweeper.study_name=resume",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=1",
    ],
    "resume_second": [
        "hparams_search=random",
        "hydra.sweeper.study_name=resume",
        "hydra.sweeper.n_trials=4",
        "trainer.max_epochs=1",
    ],
    "bad_type": ["hparams_search=bad_type", "hydra.sweeper.study_name=bad"],
    "bad_range": ["hparams_search=bad_range", "hydra.sweeper.study_name=bad"],
}
DRIVER = """
import contextlib, io, json, sys
from hydra.core.global_hydra import GlobalHydra
from lightdl import sweep_table
from lightdl.app import run_cli

out, codes = sys.argv[1], {}
for name, argv in SCENARIOS.items():
    sys.argv = ["lightdl", *TINY, *argv, f"hydra.searchpath=[file://{out}/conf]"]
    sweep_table.exit_code = 0
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        codes[name] = run_cli()
    GlobalHydra.instance().clear()
    with open(f"{out}/{name}.out", "w") as f:
        f.write(stdout.getvalue())
    with open(f"{out}/{name}.err", "w") as f:
        f.write(stderr.getvalue())
print("EXIT_CODES=" + json.dumps(codes))
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The output folder after every scenario ran, and {scenario: exit code}."""
    out = tmp_path_factory.mktemp("search")
    (out / "conf" / "hparams_search").mkdir(parents=True)
    for name, entry in (
        ("bad_type", "{type: floaty, low: 1e-4, high: 1e-1}"),
        ("bad_range", "{type: float, low: 1e-1, high: 1e-4, log: true}"),
    ):
        (out / "conf" / "hparams_search" / f"{name}.yaml").write_text(
            BAD_PRESET.format(entry=entry)
        )
    code = f"TINY = {TINY!r}\nSCENARIOS = {SCENARIOS!r}\n" + DRIVER
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=out,
        env={**quiet_env(), "LIGHTDL_OUTPUTS": str(out)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("EXIT_CODES=")]
    assert line, result.stdout[-3000:] + result.stderr[-3000:]
    return out, json.loads(line[0].removeprefix("EXIT_CODES="))


def _rows(study_dir):
    with (study_dir / "summary.csv").open() as f:
        return list(csv.DictReader(f))


def _study(out, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'studies' / f'{name}.db'}")


def test_tpe_runs_n_trials_and_saves_best_params_within_the_space(searched):
    out, codes = searched
    assert codes["tpe"] == 0, (out / "tpe.err").read_text()[-2000:]
    rows = _rows(out / "studies" / "tpe")
    assert len(rows) == 4
    assert {r["status"] for r in rows} <= {"completed", "stopped_early", "pruned"}
    best = yaml.safe_load((out / "studies" / "tpe" / "best_params.yaml").read_text())
    params = best["params"]
    assert 1e-4 <= params["optimizer.lr"] <= 1e-1
    assert params["model.hidden"] in ([64], [256], [256, 128], [512, 256])
    assert 0.0 <= params["regularizer.dropout.p"] <= 0.5
    study = _study(out, "tpe")
    assert len(study.trials) == 4 and study.best_trial.number == best["trial"]
    assert best["value"] == study.best_value and best["objective"] == "val/acc"
    # the best trial's job ran with exactly the saved overrides
    row = next(r for r in rows if r["job"] == str(best["trial"]))
    assert all(o in row["overrides"].split() for o in best["overrides"].split())
    assert "search: best trial" in (out / "tpe.out").read_text()


def test_hopeless_trials_are_pruned_early_and_recorded_in_the_study(searched):
    out, codes = searched
    assert codes["tpe"] == 0, (out / "tpe.err").read_text()[-2000:]
    rows = _rows(out / "studies" / "tpe")
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned and all(int(r["epochs"]) < 3 for r in pruned), rows
    assert all("pruner stopped it" in r["why"] for r in pruned)
    study = _study(out, "tpe")
    states = {t.number: t.state for t in study.trials}
    assert {int(r["job"]) for r in pruned} == {
        n for n, s in states.items() if s == optuna.trial.TrialState.PRUNED
    }
    # every job reported its validation curve; a pruned one stopped reporting before the last epoch
    assert all(t.intermediate_values for t in study.trials)
    assert all(
        max(t.intermediate_values) < 2
        for t in study.trials
        if t.state == optuna.trial.TrialState.PRUNED
    )


def test_second_invocation_continues_the_study_without_overwriting_jobs(searched):
    out, codes = searched
    assert codes["resume_first"] == 0 and codes["resume_second"] == 0
    second = (out / "resume_second.out").read_text()
    assert "2 trials done, running 2 more" in second
    assert second.count("status: ") == 2  # only the missing trials ran
    study = _study(out, "resume")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert len(_rows(out / "studies" / "resume")) == 4
    for trial in study.trials:  # job folder N holds trial N, from whichever invocation ran it
        summary = json.loads(
            (out / "studies" / "resume" / str(trial.number) / "summary.json").read_text()
        )
        assert f"optimizer.lr={trial.params['optimizer.lr']!r}" in summary["overrides"]


@pytest.mark.parametrize("name, words", [("bad_type", "floaty"), ("bad_range", "must not exceed")])
def test_bad_search_space_exits_2_with_one_sentence(searched, name, words):
    out, codes = searched
    assert codes[name] == 2
    err = (out / f"{name}.err").read_text().strip()
    assert len(err.splitlines()) == 1 and err.startswith("lightdl: error: ")
    assert "hydra.sweeper.params.optimizer.lr" in err and words in err
    assert not (out / "studies" / "bad.db").exists()  # nothing was stored
