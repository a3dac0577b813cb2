"""Runs compare side by side: a seed sweep aggregates per configuration, W&B runs carry group,
job type, tags, config and final metrics, TensorBoard runs carry HParams entries. Read back from the
files each tool writes, offline."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from conftest import wandb_records

TINY = [
    "data=digits",
    "trainer.max_epochs=2",  # two epochs: the HParams value must be the last of the curve
    "trainer.limit_train_batches=2",
    "test=false",
    "trainer.enable_progress_bar=false",
    "logger=[csv,tensorboard,wandb]",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A real 4-job sweep, seeds 0 and 1 x two learning rates, through the CLI entry in-process."""
    from hydra.core.global_hydra import GlobalHydra

    from lightdl import sweep_table
    from lightdl.app import run_cli

    out = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "WANDB_DIR": str(out),
        }.items():
            mp.setenv(key, value)
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.setenv("LIGHTDL_OUTPUTS", str(out / "outputs"))
        argv = ["-m", "seed=0,1", "optimizer.lr=0.001,0.01", *TINY, f"hydra.sweep.dir={out}/s"]
        mp.setattr(sys, "argv", ["lightdl", *argv])
        sweep_table.exit_code = 0
        try:
            assert run_cli() == 0
        finally:
            GlobalHydra.instance().clear()
    return out / "s"


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


# --- seeds aggregated -------------------------------------------------------------------------


def test_seed_sweep_adds_mean_std_per_configuration(sweep):
    rows = list(csv.DictReader((sweep / "summary_by_config.csv").open()))
    assert [(r["config"], r["n"], r["n_failed"], r["seeds"]) for r in rows] == [
        ("optimizer.lr=0.001", "2", "0", "0 1"),
        ("optimizer.lr=0.01", "2", "0", "0 1"),
    ]
    for row, jobs in zip(rows, [("0", "2"), ("1", "3")], strict=True):  # lr varies fastest
        accs = [_summary(sweep / j)["metrics"]["val/acc"] for j in jobs]
        assert float(row["val/acc_mean"]) == pytest.approx(sum(accs) / 2)
        assert float(row["val/acc_std"]) == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
        assert float(row["val/acc_min"]) == pytest.approx(min(accs))
        assert float(row["val/acc_max"]) == pytest.approx(max(accs))
    markdown = (sweep / "summary.md").read_text()
    assert "## By configuration" in markdown and " ± " in markdown
    assert len(list(csv.DictReader((sweep / "summary.csv").open()))) == 4  # the job table stays


def _write_job(sweep: Path, name: str, overrides: list[str], status: str, acc: float | None):
    (sweep / name).mkdir()
    summary = {"status": status, "overrides": overrides, "run_dir": str(sweep / name)}
    if acc is not None:
        summary |= {"metrics": {"val/acc": acc, "val/loss": 1 - acc}, "epochs": 3}
    if status == "failed":
        summary["error"] = "RuntimeError: boom"
    (sweep / name / "summary.json").write_text(json.dumps(summary))


def test_failed_and_diverged_jobs_are_counted_apart_and_left_out_of_the_stats(tmp_path):
    from lightdl.sweep_table import write_table

    jobs = [
        (["seed=0", "optimizer=sgd", "data=digits"], "completed", 0.50),
        (["seed=1", "optimizer=sgd", "data=digits"], "stopped_early", 0.70),
        (["seed=2", "optimizer=sgd", "data=digits"], "diverged", 0.10),
        (["seed=3", "optimizer=sgd", "data=digits"], "pruned", 0.20),  # in neither n nor n_failed
        (["seed=0", "optimizer=adam", "data=digits"], "completed", 0.90),
        (["seed=1", "optimizer=adam", "data=digits"], "failed", None),
    ]
    for index, (overrides, status, acc) in enumerate(jobs):
        _write_job(tmp_path, str(index), overrides, status, acc)
    write_table(tmp_path)
    sgd, adam = csv.DictReader((tmp_path / "summary_by_config.csv").open())
    row = (sgd["config"], sgd["n"], sgd["n_failed"], sgd["seeds"])
    assert row == ("optimizer=sgd", "2", "1", "0 1 2 3")
    assert float(sgd["val/acc_mean"]) == pytest.approx(0.60)  # diverged 0.1, pruned 0.2 left out
    assert float(sgd["val/acc_std"]) == pytest.approx(0.1414213, rel=1e-5)  # sample std (n-1)
    assert (sgd["val/acc_min"], sgd["val/acc_max"]) == ("0.5", "0.7")
    assert (adam["n"], adam["n_failed"], adam["val/acc_std"]) == ("1", "1", "")  # no std of one
    markdown = (tmp_path / "summary.md").read_text()
    assert "| optimizer=sgd | 0 1 2 3 | 2 | 1 | 3 ± 0 | 0.6 ± 0.14 | 0.4 ± 0.14 |" in markdown


def test_without_a_seed_sweep_nothing_is_aggregated(tmp_path):
    from lightdl.sweep_table import write_table

    _write_job(tmp_path, "0", ["seed=3", "optimizer=sgd"], "completed", 0.5)
    _write_job(tmp_path, "1", ["seed=3", "optimizer=adam"], "completed", 0.6)
    write_table(tmp_path)
    assert not (tmp_path / "summary_by_config.csv").exists()
    assert "By configuration" not in (tmp_path / "summary.md").read_text()


# --- W&B --------------------------------------------------------------------------------------


def test_wandb_runs_carry_group_job_type_tags_config_and_final_metrics(sweep):
    job = sweep / "3"  # seed=1, optimizer.lr=0.01
    records = list(wandb_records(next(job.glob("wandb/offline-run-*/run-*.wandb"))))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_group == f"{sweep.parent.name}_{sweep.name}"
    assert run.job_type == "sweep"
    assert {"seed=1", "optimizer.lr=0.01", "data=digits"} <= set(run.tags)
    config = {
        u.key: json.loads(u.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for u in r.config.update
    }
    assert config["optimizer.lr"] == 0.01 and config["seed"] == 1 and config["optimizer"] == "adam"
    final: dict = {}  # the summary as the run ends: later updates win
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            final |= {u.key: json.loads(u.value_json) for u in r.summary.update if u.key}
    metrics = _summary(job)["metrics"]
    assert final["status"] == "completed"
    assert final["val/acc"] == pytest.approx(metrics["val/acc"])
    assert final["val/loss"] == pytest.approx(metrics["val/loss"])


def test_wandb_job_type_and_tags_rules():
    from lightdl.loggers import wandb_job_type, wandb_tags

    assert wandb_job_type("train", None, multirun=False) == "train"
    assert wandb_job_type("train", None, multirun=True) == "sweep"
    assert wandb_job_type("train", "lr_sweep", multirun=True) == "lr_sweep"
    assert wandb_job_type("eval", "lr_sweep", multirun=False) == "eval"
    long = "paths.output_dir=/" + "x" * 100
    tags = wandb_tags(["+trainer.gradient_clip_val=1", long, "seed=0"], extra=["mine", "seed=0"])
    assert tags == ["mine", "seed=0", "trainer.gradient_clip_val=1", long[:64]]


# --- TensorBoard ------------------------------------------------------------------------------


def _hparams_entries(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(log_dir))
    events.Reload()
    parsed = {}
    for tag, content in events.PluginTagToContent("hparams").items():
        parsed[tag] = HParamsPluginData()
        parsed[tag].ParseFromString(content)
    return events, parsed


def test_tensorboard_hparams_hold_the_overrides_and_the_final_metrics(sweep):
    from tensorboard.plugins.hparams.api_pb2 import Status

    job = sweep / "1"  # seed=0, optimizer.lr=0.01
    events, entries = _hparams_entries(job / "tensorboard")
    hparams = entries["_hparams_/session_start_info"].session_start_info.hparams
    assert hparams["optimizer.lr"].number_value == pytest.approx(0.01)
    assert hparams["seed"].number_value == 0
    assert hparams["optimizer"].string_value == "adam"  # the group choice, not only its class
    assert hparams["test"].string_value == "False"
    experiment = entries["_hparams_/experiment"].experiment
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"val/acc", "val/loss", "train/loss"} <= tags
    assert entries["_hparams_/session_end_info"].session_end_info.status == Status.STATUS_SUCCESS
    # TensorBoard shows a metric column's last scalar: the curve is whole and ends on the final value
    metrics = _summary(job)["metrics"]
    for tag in ("val/acc", "val/loss"):
        curve = events.Scalars(tag)
        assert len(curve) == 2 and curve[-1].value == pytest.approx(metrics[tag])


def test_tensorboard_session_of_a_diverged_run_ends_as_a_failure(tmp_path):
    from tensorboard.plugins.hparams.api_pb2 import Status

    from lightdl.loggers import write_tensorboard_hparams

    write_tensorboard_hparams(tmp_path, {"optimizer.lr": 10.0}, {"val/loss": 1e9}, "diverged")
    _, entries = _hparams_entries(tmp_path)
    assert entries["_hparams_/session_end_info"].session_end_info.status == Status.STATUS_FAILURE


def test_secret_looking_values_are_masked_in_tags_and_logged_config():
    from omegaconf import OmegaConf

    from lightdl.loggers import MASK, flat_config, wandb_tags

    tags = wandb_tags(["+logger.wandb.api_key=abc123", "data.token=t0k", "optimizer.lr=0.1"])
    assert f"logger.wandb.api_key={MASK}" in tags and f"data.token={MASK}" in tags
    assert "optimizer.lr=0.1" in tags and not any("abc123" in t or "t0k" in t for t in tags)
    flat = flat_config(
        OmegaConf.create({"logger": {"api_key": "abc123"}, "optimizer": {"lr": 0.1}})
    )
    assert flat == {"logger.api_key": MASK, "optimizer.lr": 0.1}
