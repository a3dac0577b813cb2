"""Every study preset in conf/experiment runs as a multirun and writes its comparison table."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import quiet_env, run_cli

from lightdl.paths import options

TINY = [
    "data=digits",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "test=false",
    "trainer.enable_progress_bar=false",
]
# preset -> (jobs in its sweep, a column its table must have)
PRESETS = {
    "xor_perceptron": (2, "val/acc"),
    "init_comparison": (13, "val/acc"),
    "activation_depth": (2, "grad_norm/first_over_last"),
    "loss_comparison": (3, "val/acc"),
    "optimizer_comparison": (5, "val/acc"),
    "lr_sweep": (8, "val/loss"),
    "batch_size_sweep": (6, "wall_seconds"),
    "hidden_units": (5, "gap/train_minus_val_acc"),
    "overfitting_cures": (5, "gap/train_minus_val_acc"),
    "noisy_labels": (2, "best_epoch"),
    "batchnorm_lr": (6, "val/acc"),
    "selu_deep": (4, "grad_norm/first"),
    "transfer_learning": (4, "val/acc"),
    "rnn_vs_lstm": (3, "val/acc"),
    "bidirectional": (2, "val/acc"),
    "grad_clipping_rnn": (2, "grad_norm/max"),
    "seq2seq_attention": (4, "val/exact_match"),
    "sgan_few_labels": (2, "val/acc"),
    "compression": (8, "val/acc"),  # one seed (EXTRA): each row is a different callback
}
OWN_DATA = {
    "xor_perceptron",
    "rnn_vs_lstm",
    "bidirectional",
    "grad_clipping_rnn",
    "seq2seq_attention",
}
EXTRA = {"compression": ["seed=0"]}  # a command-line value replaces the preset's sweep of 3 seeds
SINGLE_RUNS = {
    "lstm_fashion",
    "cnn_fashion",
    "sentiment_rnn",
    "char_rnn",
    "word2vec",
    "dcgan",
    "vae",
    "cgan",
    "grid_vs_random",
}


# Runs each preset through lightdl's real CLI entry (app.run_cli on a patched argv), all in one
# fresh process so torch and Lightning are imported once for the twelve sweeps.
DRIVER = """
import json, sys
from hydra.core.global_hydra import GlobalHydra
from lightdl import sweep_table
from lightdl.app import run_cli

out, codes = sys.argv[1], {}
for preset in sys.argv[2:]:
    argv = [f"experiment={preset}", *TINY, f"hydra.sweep.dir={out}/{preset}"]
    argv.append("hydra.callbacks.sweep_table.report=false")  # tests/test_report.py covers it
    if preset in OWN_DATA:  # presets whose data is the point (XOR, sequences, text)
        argv.remove("data=digits")
    argv += EXTRA.get(preset, [])
    sys.argv = ["lightdl", *argv]
    sweep_table.exit_code = 0
    codes[preset] = run_cli()
    GlobalHydra.instance().clear()
print("EXIT_CODES=" + json.dumps(codes))
"""


def _table(sweep_dir):
    with (sweep_dir / "summary.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """{preset: (exit code, sweep dir)} for every preset run with tiny limits."""
    out = tmp_path_factory.mktemp("presets")
    code = f"TINY = {TINY!r}\nOWN_DATA = {OWN_DATA!r}\nEXTRA = {EXTRA!r}\n" + DRIVER
    result = subprocess.run(
        [sys.executable, "-c", code, str(out), *sorted(PRESETS)],
        cwd=out,
        env={**quiet_env(), "LIGHTDL_OUTPUTS": str(out)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("EXIT_CODES=")]
    assert line, result.stdout[-3000:] + result.stderr[-3000:]
    codes = json.loads(line[0].removeprefix("EXIT_CODES="))
    return {preset: (codes[preset], out / preset) for preset in PRESETS}


def test_every_preset_is_covered():
    studies = set(options("experiment")) - SINGLE_RUNS
    assert studies == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_runs_its_sweep_and_writes_the_table(swept, preset):
    jobs, column = PRESETS[preset]
    code, sweep_dir = swept[preset]
    assert code == 0
    rows = _table(sweep_dir)
    assert len(rows) == jobs
    # a diverged job is a result (lr_sweep's lr=10), a failed one is a bug
    assert all(row["status"] in ("completed", "stopped_early", "diverged") for row in rows), rows
    trained = [row for row in rows if row["status"] != "diverged"]
    assert column in rows[0] and trained and all(row[column] != "" for row in trained)
    assert (sweep_dir / "summary.md").is_file()


def test_xor_perceptron_fails_where_the_hidden_layer_succeeds(tmp_path):
    """The full preset (20 epochs of XOR): no hidden layer stays near chance, one hidden layer does not."""
    result = run_cli("experiment=xor_perceptron", "trainer.enable_progress_bar=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (sweep_dir,) = (tmp_path / "outputs").glob("multirun/*/*")
    rows = _table(sweep_dir)
    acc = {r["overrides"].split()[0]: float(r["test/acc"]) for r in rows}
    assert acc["model.hidden=[]"] < 0.7  # no hidden layer, i.e. the perceptron: chance is 0.5
    assert acc["model.hidden=[16]"] > 0.9  # noise near the axes caps it a little below 1
