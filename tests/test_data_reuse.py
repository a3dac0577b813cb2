"""lightdl.data.reuse: inside a multirun job, a job whose data config matches the previous job's
trains on the same, already prepared DataModule, with the results a fresh one gives."""

from __future__ import annotations

from conftest import make_cfg

from lightdl import build
from lightdl.data import reuse
from lightdl.train import train


def test_same_data_config_reuses_the_datamodule_only_inside_a_sweep_job(tmp_path):
    cfg = make_cfg(tmp_path, "optimizer.lr=0.01")
    other_optimizer = make_cfg(tmp_path, "optimizer.lr=0.02")
    other_data = make_cfg(tmp_path, "data.batch_size=32")
    assert build.build_datamodule(cfg) is not build.build_datamodule(cfg)  # single runs: never
    with reuse.across_jobs(True):
        first = build.build_datamodule(cfg)
        assert build.build_datamodule(other_optimizer) is first
        changed = build.build_datamodule(other_data)
        assert changed is not first and changed.batch_size == 32
        assert build.build_datamodule(cfg) is not first  # only the last one is kept
    with reuse.across_jobs(False):
        assert build.build_datamodule(other_data) is not changed


def test_a_reused_datamodule_trains_exactly_like_a_fresh_one(tmp_path):
    def run(name: str) -> dict:
        cfg = make_cfg(tmp_path / name, "trainer.max_epochs=2", "test=true")
        return train(cfg, tmp_path / name / "run")["metrics"]

    fresh = run("fresh")
    with reuse.across_jobs(True):
        first, second = run("first"), run("second")
    for key in ("train/loss", "val/loss", "val/acc", "test/acc"):
        assert first[key] == second[key] == fresh[key]
