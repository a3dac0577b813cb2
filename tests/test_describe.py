"""`python -m lightdl.describe <group> [option]`: concept, parameters with defaults and comments, an
example command; unknown names get one sentence and exit 2; torch is never imported."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

from lightdl.describe import main
from lightdl.paths import options


def test_option_shows_concept_parameters_and_example(capsys):
    assert main(["optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("optimizer=adam (default)\n  Adam: per-parameter step sizes")
    assert "use adamw for true weight decay." in out  # the whole header, not just its first line
    assert "optimizer.lr = 0.001" in out and "optimizer.betas = [0.9, 0.999]" in out
    assert "python -m lightdl optimizer=adam optimizer.lr=0.001" in out


def test_inline_comments_and_list_groups(capsys):
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "data.batch_size = 64" in out and "# examples per step: 1 is pure SGD" in out
    assert main(["callbacks", "grad_norms"]) == 0  # a list group keeps its default members
    out = capsys.readouterr().out
    assert "callbacks.grad_norms.every_n_steps = 1" in out
    assert "callbacks=[checkpoint,early_stopping,nan_guard,grad_norms]" in out
    assert main(["regularizer"]) == 0  # a whole group: every option
    out = capsys.readouterr().out
    assert (
        out.count("\nregularizer=") == len(options("regularizer"))
        and "regularizer.l2.lam = 0.0005" in out
    )


def test_unknown_names_are_one_sentence_with_a_suggestion(capsys):
    assert main(["optimizer", "adamm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightdl: error: unknown option 'adamm' for group 'optimizer'")
    assert err.endswith("Did you mean 'adam'?") and "adadelta, adagrad, adam, adamw" in err
    assert len(err.splitlines()) == 1
    assert main(["optimzer"]) == 2
    assert "Did you mean 'optimizer'?" in capsys.readouterr().err


def test_module_runs_without_importing_torch():
    code = (
        "import runpy, sys; sys.argv = ['describe', 'optimizer', 'adam']\n"
        "try:\n    runpy.run_module('lightdl.describe', run_name='__main__')\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "print('torch imported:', 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "optimizer.lr = 0.001" in done.stdout
    assert done.stdout.strip().endswith("torch imported: False")
