"""The comparison report: a real 4-job sweep gives a sortable table and one figure per metric and per
swept key, embedded in one HTML file; an Optuna study adds its history and importances."""

from __future__ import annotations

import base64
import csv
import json
import re
import subprocess
import sys
from html import escape

import pytest
from conftest import run_cli

from lightdl.report import write_report
from lightdl.report.__main__ import main
from lightdl.report.plots import Axis
from lightdl.report.write import NO_STUDY

PNG = b"\x89PNG\r\n\x1a\n"
SWEEP = [
    "-m",
    "data=digits",
    "optimizer.lr=0.001,0.01",
    "model.hidden=[16],[32]",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=2",
    "test=false",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A real 4-job multirun, then the `python -m lightdl.report` CLI on its folder."""
    root = tmp_path_factory.mktemp("report")
    sweep_dir = root / "sweep"
    done = run_cli(*SWEEP, f"hydra.sweep.dir={sweep_dir}", cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert main([str(sweep_dir)]) == 0  # the CLI's code, in this process
    return sweep_dir


def _body_rows(page: str) -> list[str]:
    tbody = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", tbody, flags=re.S)


def _check_png(report, name: str, page: str) -> None:
    data = (report / name).read_bytes()
    assert data.startswith(PNG) and len(data) > 1000, name
    assert base64.b64encode(data).decode() in page, f"{name} is not embedded in index.html"
    assert f'href="{name}"' in page


def test_report_table_lists_every_job_sortably(sweep):
    page = (sweep / "report" / "index.html").read_text()
    rows = _body_rows(page)
    assert page.count("<table") == 1 and len(rows) == 4
    for job in range(4):
        overrides = json.loads((sweep / str(job) / "summary.json").read_text())["overrides"]
        assert " ".join(overrides) in rows[job]
    assert 'class="sortable"' in page and 'addEventListener("click"' in page
    assert "<script src" not in page and "<link" not in page  # nothing fetched: works offline
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    for column in ("job", "overrides", "status", "val/loss", "val/acc", "wall_seconds"):
        assert f"<th>{column}</th>" in header


def test_report_has_one_curve_per_metric_and_one_plot_per_swept_key(sweep):
    report = sweep / "report"
    page = (report / "index.html").read_text()
    with (sweep / "0" / "metrics.csv").open() as handle:
        metrics = [m for m in next(csv.reader(handle)) if m not in ("epoch", "step")]
    assert {"train/loss", "val/loss", "val/acc"} <= set(metrics)
    curves = {f"curve_{m.replace('/', '_')}.png" for m in metrics}
    assert {p.name for p in report.glob("curve_*.png")} == curves
    swept = {"objective_vs_optimizer.lr.png", "objective_vs_model.hidden.png"}
    assert {p.name for p in report.glob("objective_vs_*.png")} == swept
    for name in sorted(curves | swept | {"parallel_coordinates.png"}):
        _check_png(report, name, page)
    assert "Swept: optimizer.lr, model.hidden." in page
    assert escape(NO_STUDY) in page and "study_history" not in page


def test_axis_kinds():
    assert Axis("optimizer.lr", ["0.0001", "0.01"]).log  # spans two decades: log axis
    assert not Axis("optimizer.lr", ["0.001", "0.01"]).log
    hidden = Axis("model.hidden", ["[32]", "[16]", "[32]"])
    assert not hidden.numeric and hidden.categories == ["[16]", "[32]"]
    assert hidden.position("[16]") == 0.0 and hidden.position("[32]") == 1.0


def _fake_job(sweep_dir, name, status, lr, hidden, losses):
    run = sweep_dir / name
    (run / ".hydra").mkdir(parents=True)
    overrides = [f"optimizer.lr={lr}", f"model.hidden=[{hidden}]"]
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (run / ".hydra" / "config.yaml").write_text("monitor: val/loss\nmonitor_mode: min\n")
    best = {"metric": "val/loss", "value": min(losses), "epoch": 0} if losses else None
    summary = {"status": status, "overrides": overrides, "metrics": {}, "best": best}
    (run / "summary.json").write_text(json.dumps(summary))
    lines = [f"{epoch},{epoch},{loss}" for epoch, loss in enumerate(losses)]
    (run / "metrics.csv").write_text("epoch,step,val/loss\n" + "\n".join(lines) + "\n")


def test_optuna_study_adds_history_and_importances_and_keeps_bad_jobs(tmp_path):
    """The study's SQLite file lies beside the sweep folder, as the hparams_search presets keep it."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = {
        "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "model.hidden": CategoricalDistribution([16, 32]),
    }
    sweep_dir = tmp_path / "s"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    for number, (lr, hidden, loss) in enumerate(
        [(1e-4, 16, 2.0), (1e-3, 32, 1.5), (1e-2, 16, 1.2), (1e-1, 32, 1.9), (3e-3, 16, None)]
    ):
        state = optuna.trial.TrialState.COMPLETE if loss else optuna.trial.TrialState.PRUNED
        trial = optuna.trial.create_trial(
            params={"optimizer.lr": lr, "model.hidden": hidden},
            distributions=space,
            value=loss,
            state=state,
            intermediate_values={0: loss or 2.4},
        )
        study.add_trial(trial)
        status = "completed" if loss else "pruned"
        _fake_job(sweep_dir, str(number), status, lr, hidden, [loss + 0.3, loss] if loss else [2.4])
    _fake_job(sweep_dir, "5", "failed", 0.5, 32, [])

    page = write_report(sweep_dir).read_text()
    report = sweep_dir / "report"
    for name in ("study_history_s.db_s.png", "study_importances_s.db_s.png"):
        _check_png(report, name, page)
    assert "5 trials: 4 complete, 1 pruned." in page and NO_STUDY not in page
    rows = _body_rows(page)
    assert len(rows) == 6 and '<tr class="pruned">' in rows[4] and '<tr class="failed">' in rows[5]
    _check_png(report, "parallel_coordinates.png", page)


def test_a_folder_of_separate_runs_at_any_depth(tmp_path):
    _fake_job(tmp_path / "2025-01-01", "10-00-00", "completed", 0.01, 16, [1.0, 0.8])
    _fake_job(tmp_path / "2025-01-02", "09-00-00", "diverged", 1.0, 16, [3.0])
    page = write_report(tmp_path).read_text()
    rows = _body_rows(page)
    assert len(rows) == 2 and "2025-01-01/10-00-00" in rows[0] and "diverged" in rows[1]
    assert "Swept: optimizer.lr." in page and (tmp_path / "report" / "curve_val_loss.png").is_file()


def test_bad_path_is_one_sentence_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "is not a directory" in message
    assert main([str(tmp_path)]) == 2  # a folder without runs
    assert "no run found" in capsys.readouterr().err


def test_importing_the_report_does_not_import_matplotlib():
    code = "import sys, lightdl.report; assert 'matplotlib' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
