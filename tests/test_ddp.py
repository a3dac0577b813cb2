"""trainer=ddp: 2 CPU processes (gloo) train the digits MLP to the single-process result, inside a
sweep each job runs once in its own directory, torchrun's ranks share one run, and each rank
trains on its own slice of every epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import quiet_env, run_cli
from hydra import compose, initialize_config_dir

from lightdl.app import torchrun_args
from lightdl.data.batches import TensorBatches
from lightdl.distributed import check
from lightdl.errors import ConfigError
from lightdl.paths import conf_dir

QUIET = ["data=digits", "trainer.enable_progress_bar=false"]


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def test_each_rank_takes_its_slice_and_the_ranks_together_take_one_big_batch():
    x = torch.arange(103).float()
    whole = list(TensorBatches(x, x, 8, shuffle=True, seed=3))  # one process, batch 8
    ranks = [list(TensorBatches(x, x, 4, shuffle=True, seed=3, shard=(r, 2))) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole)  # the same number of steps on every rank
    seen = torch.cat([b for rank in ranks for b, _ in rank])
    assert len(seen) == 104  # padded by one example, as DistributedSampler pads
    assert set(seen.long().tolist()) == set(range(103))  # the union is the whole split
    for k in range(len(whole) - 1):  # step k of the ranks together = step k of one process
        together = torch.cat([ranks[0][k][0], ranks[1][k][0]])
        assert sorted(together.tolist()) == sorted(whole[k][0].tolist())
    first = set(torch.cat([b for b, _ in ranks[0]]).tolist())
    second = set(torch.cat([b for b, _ in ranks[1]]).tolist())
    assert len(first & second) <= 1  # disjoint but for the padding


def test_the_ranks_shuffle_each_epoch_the_same_way():
    x = torch.arange(20).float()
    batches = TensorBatches(x, x, 5, shuffle=True, seed=0, shard=(1, 2))
    epoch0, epoch1 = (torch.cat([b for b, _ in batches]) for _ in range(2))
    assert not torch.equal(epoch0, epoch1)
    again = TensorBatches(x, x, 5, shuffle=True, seed=0, shard=(1, 2))
    assert torch.equal(torch.cat([b for b, _ in again]), epoch0)


def composed(*overrides: str):
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["trainer=ddp", "trainer.steps_per_call=4"], "trainer.steps_per_call=4 cannot"),
        (["trainer=ddp", "trainer.num_nodes=2"], "torchrun or SLURM"),
        (["trainer.strategy=ddp_spawn", "trainer.devices=2"], "use trainer=ddp"),
        (["trainer=ddp", "trainer.devices=auto"], "how many processes to start"),
        (["trainer.strategy=fsdp", "trainer.devices=2"], "use trainer=ddp"),
    ],
)
def test_what_ddp_cannot_do_is_refused_in_one_sentence(overrides, words):
    with pytest.raises(ConfigError, match=words):
        check(composed(*overrides))


def test_torchrun_ranks_share_one_run_directory_and_only_rank_0_writes_hydra_files():
    env = {"TORCHELASTIC_RUN_ID": "abc", "RANK": "1"}
    args = torchrun_args(["trainer=ddp"], env)
    assert "hydra.run.dir=${paths.output_dir}/torchrun/abc" in args
    assert "hydra.output_subdir=null" in args
    assert "hydra.output_subdir=null" not in torchrun_args(["trainer=ddp"], {**env, "RANK": "0"})
    assert torchrun_args(["hydra.run.dir=x"], env)[:1] == ["hydra.run.dir=x"]
    with pytest.raises(ConfigError, match="not a sweep"):
        torchrun_args(["-m", "trainer=ddp"], env)
    assert torchrun_args(["-m"], {}) == ["-m"]  # not under torchrun: untouched
    with pytest.raises(ConfigError, match="no run id"):  # torchrun without --standalone/--rdzv-id
        torchrun_args(["trainer=ddp"], {"TORCHELASTIC_RUN_ID": "none", "RANK": "0"})
    assert torchrun_args(["hydra.run.dir=x"], {"TORCHELASTIC_RUN_ID": "none"}) == [
        "hydra.run.dir=x"
    ]


def test_the_linear_scaling_rule_counts_the_global_batch(tmp_path):
    from conftest import make_cfg

    from lightdl import build

    scaled = ["data.scale_lr_with_batch=true", "data.batch_size=32"]
    one = build.build_datamodule(make_cfg(tmp_path, *scaled))
    two = build.build_datamodule(make_cfg(tmp_path, *scaled, "trainer=ddp"))
    assert (one.lr_scale, two.lr_scale) == (0.25, 0.5)  # 32 / 128 and 2 x 32 / 128


def test_a_gan_is_refused_under_ddp_before_training(tmp_path):
    from conftest import make_cfg

    from lightdl.train import assemble

    with pytest.raises(ConfigError, match="steps its optimizers by hand"):
        assemble(make_cfg(tmp_path, "model=gan", "trainer=ddp"))


def test_nan_guard_stops_when_another_rank_diverges():
    """Rank 0's own losses stay finite; the mean over the ranks carries rank 1's NaN."""
    from lightdl.callbacks.nan_guard import NanGuard

    other_rank = torch.tensor([1.0, 1.0, float("nan"), 1.0], dtype=torch.float64)

    class TwoRanks:
        def reduce(self, losses, reduce_op):
            assert reduce_op == "mean"
            return (losses + other_rank[: len(losses)]) / 2

    class FakeTrainer:
        global_step, should_stop, strategy = 0, False, TwoRanks()

    guard, trainer = NanGuard(check_every_n_steps=4), FakeTrainer()
    for step in range(4):
        trainer.global_step = step + 1
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(2.0)}, None, step)
    assert trainer.should_stop and guard.diverged["step"] == 2


def test_two_process_ddp_reaches_the_single_process_accuracy(tmp_path):
    """Same global batch (2 x 32 = 64) and seed: the same steps, so the same accuracy."""
    epochs = "trainer.max_epochs=4"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    single = run_cli(*QUIET, epochs, "data.batch_size=64", cwd=tmp_path / "one", timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = run_cli(*QUIET, epochs, "trainer=ddp", "data.batch_size=32", cwd=tmp_path / "two")
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    (one,), (two,) = summaries(tmp_path / "one"), summaries(tmp_path / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["global_steps"] == two["global_steps"]
    assert abs(one["metrics"]["test/acc"] - two["metrics"]["test/acc"]) <= 0.01
    assert one["metrics"]["test/acc"] > 0.85  # it learned: the comparison is not of two failures
    run_dir = Path(two["run_dir"])
    assert (run_dir / "ddp" / "rank1.log").is_file()  # the other rank ran, and wrote only its log
    assert sorted(p.name for p in (run_dir / "ddp").iterdir()) == ["rank1.log", "rank1.ready"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # eval of a DDP-trained run re-tests it in one process: the same test/acc, no ranks started
    again = run_cli("mode=eval", f"ckpt_path={run_dir}", cwd=tmp_path / "two")
    assert again.returncode == 0, again.stderr[-2000:]
    evaluated = json.loads(next((tmp_path / "two").rglob("eval.json")).read_text())
    assert evaluated["metrics"]["test/acc"] == two["metrics"]["test/acc"]
    assert not list((tmp_path / "two").rglob("train_ddp_process_*"))  # Lightning's own launcher


def test_a_ddp_sweep_runs_each_job_once_in_its_own_directory(tmp_path):
    """Run inside a one-task SLURM allocation's variables, which Lightning would otherwise read
    the ranks from (every process rank 0)."""
    sweep = tmp_path / "sweep"
    slurm = {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "study"}
    done = run_cli(
        "-m",
        *QUIET,
        "trainer=ddp",
        "trainer.max_epochs=1",
        "optimizer=sgd,adam",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env=slurm,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    found = summaries(sweep)
    assert len(found) == 2 and {s["status"] for s in found} == {"completed"}
    assert {s["world_size"] for s in found} == {2}
    assert done.stdout.count("status: completed") == 2  # each job ran once
    assert sorted(s["overrides"][-1] for s in found) == ["optimizer=adam", "optimizer=sgd"]


def test_a_torchrun_launch_of_two_processes_writes_one_run(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "lightdl", *QUIET, "trainer=ddp"]
    command += ["trainer.max_epochs=1", "test=false"]
    env = {**quiet_env(), "LIGHTDL_OUTPUTS": str(tmp_path / "outputs")}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (summary,) = summaries(tmp_path / "outputs")
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent.name == "torchrun"
    assert not (run_dir / "ddp").exists()  # torchrun started the ranks, not lightdl
    assert done.stdout.count("status: completed") == 1  # rank 1 reports nothing


def test_a_diverging_ddp_run_stops_on_every_rank_at_the_single_process_step(tmp_path):
    diverging = [*QUIET, "optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=2"]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    single = run_cli(*diverging, "data.batch_size=64", cwd=tmp_path / "one")
    ddp = run_cli(*diverging, "trainer=ddp", "data.batch_size=32", cwd=tmp_path / "two")
    assert single.returncode == ddp.returncode == 3, ddp.stderr[-2000:]
    (one,), (two,) = summaries(tmp_path / "one"), summaries(tmp_path / "two")
    assert two["status"] == "diverged" and two["reason"] == one["reason"]


def test_a_rank_that_dies_before_training_is_reported_at_once(tmp_path, monkeypatch):
    """Without the ready handshake rank 0 would wait at the rendezvous for its 30-minute timeout."""
    import os

    from conftest import make_cfg

    from lightdl import distributed

    def failing_rank(rank, handed, run_dir, folder):
        log = folder / f"rank{rank}.log"
        return subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"]), log

    monkeypatch.setattr(distributed, "_start_rank", failing_rank)
    before = dict(os.environ)
    with pytest.raises(RuntimeError, match=r"exited with code 3 before training; see .*rank1\.log"):
        with distributed.ranks(make_cfg(tmp_path, "trainer=ddp"), tmp_path):
            assert os.environ["WORLD_SIZE"] == "2" and os.environ["LOCAL_RANK"] == "0"
            distributed.ready()
    assert dict(os.environ) == before  # the job's DDP variables are gone again
