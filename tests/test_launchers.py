"""Launchers: joblib jobs share the cores (torch threads divided), SLURM submissions rendered without a
cluster, submitit_local run for real (slow)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import quiet_env, run_cli
from hydra import compose, initialize_config_dir
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from lightdl import threads
from lightdl.paths import conf_dir

TINY = [
    "data=digits",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "test=false",
    "trainer.enable_progress_bar=false",
]


def hydra_node(tmp_path: Path, *overrides: str, task=(), params=None, mode=RunMode.MULTIRUN):
    """The real `hydra` node of a job of a sweep whose command line held `task` (and a preset's
    hydra.sweeper.params), with the sweep's multirun.yaml written as Hydra's basic sweeper does."""
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir(exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.mode = mode
        cfg.hydra.sweep.dir = str(sweep_dir)
        cfg.hydra.overrides.task = list(task)
        cfg.hydra.sweeper.params = params
    OmegaConf.save(cfg, sweep_dir / "multirun.yaml")
    return cfg.hydra


TWO = ["optimizer.lr=0.1,0.01"]
EIGHT = ["optimizer.lr=0.1,0.01", "seed=range(4)"]


@pytest.mark.parametrize(
    "overrides, task, params, expected",
    [
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], EIGHT, None, 2),
        (["hydra/launcher=joblib"], TWO, None, 2),  # n_jobs=-1 (all 8 cores) capped by the 2 jobs
        (["hydra/launcher=joblib"], EIGHT, None, 8),
        (
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=-2"],
            EIGHT,
            None,
            7,
        ),  # all cores but one
        (["hydra/launcher=joblib", "hydra.sweeper.max_batch_size=3"], EIGHT, None, 3),
        (["hydra/launcher=joblib"], TWO, {"seed": "range(3)"}, 6),  # a preset's sweeper params
        (["hydra/launcher=submitit_local"], TWO, None, 2),  # every job at once
        (["hydra/launcher=submitit_slurm"], EIGHT, None, None),  # each job has its own allocation
        ([], EIGHT, None, None),  # the basic launcher runs one job at a time
    ],
)
def test_parallel_jobs_counts_jobs_sharing_the_machine(
    tmp_path, monkeypatch, overrides, task, params, expected
):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    node = hydra_node(tmp_path, *overrides, task=task, params=params)
    assert threads.parallel_jobs(node) == expected


def test_parallel_jobs_single_run_and_other_sweepers(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    single = hydra_node(tmp_path, "hydra/launcher=joblib", mode=RunMode.RUN)
    assert threads.parallel_jobs(single) is None
    search = hydra_node(tmp_path, "hydra/launcher=joblib", task=EIGHT)
    with open_dict(search):  # a search sweeper hands n_jobs trials to the launcher at once
        search.sweeper = {"_target_": "somewhere.SearchSweeper", "n_jobs": 3}
    assert threads.parallel_jobs(search) == 3
    with open_dict(search):
        search.sweeper = {"_target_": "somewhere.SearchSweeper"}  # batch unknown: n_jobs alone
    assert threads.parallel_jobs(search) == 8


def test_divide_threads_sets_torch_and_child_environment(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    wanted = before + 1  # differs from what torch has now, whatever the machine
    monkeypatch.setattr(threads, "cores", lambda: 2 * wanted)
    for var in threads.THREAD_VARS:
        monkeypatch.setenv(var, "unset-by-test")  # restored after the test
    node = hydra_node(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", task=TWO)
    try:
        assert threads.divide_threads(node) == wanted
        assert torch.get_num_threads() == wanted
        assert all(os.environ[var] == str(wanted) for var in threads.THREAD_VARS)
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("OMP_NUM_THREADS", "unset-by-test")
    basic = hydra_node(tmp_path, task=TWO)
    assert threads.divide_threads(basic) is None
    assert torch.get_num_threads() == before  # left at torch's default
    assert os.environ["OMP_NUM_THREADS"] == "unset-by-test"


@pytest.mark.slow  # two worker processes import torch and Lightning: ~25-60 s
def test_joblib_sweep_runs_in_worker_processes_with_divided_threads(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "optimizer.lr=0.001,0.01",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # the table is written once, by the launching process, from both workers' summaries
    assert done.stdout.count("sweep: 2 jobs") == 1
    with (sweep / "summary.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "completed")]
    cores = threads.cores()
    line = f"threads: {max(1, cores // 2)} torch thread(s) per job ({cores} cores, 2 jobs at once)"
    for job in ("0", "1"):  # the job's own log, written in its loky worker
        assert line in next((sweep / job).glob("*.log")).read_text()


# Runs lightdl's CLI with a fake `sbatch` on PATH and SLURM results short-circuited: the launcher
# writes the real batch script and the pickled jobs, and nothing waits for a cluster.
SLURM_DRIVER = """
import sys
from hydra.core.utils import JobReturn, JobStatus
from submitit.slurm.slurm import SlurmJob
from lightdl.app import run_cli

SlurmJob.results = lambda self: [JobReturn(status=JobStatus.COMPLETED)]
sys.argv = ["lightdl", *sys.argv[1:]]
sys.exit(run_cli())
"""
FAKE_SBATCH = (
    '#!/bin/sh\necho "$@" >> "$(dirname "$0")/sbatch_calls.txt"\necho "Submitted batch job 4242"\n'
)


def render_slurm(tmp_path: Path, *overrides: str) -> tuple[Path, str]:
    """(sweep dir, the batch script) of a 2-job sweep submitted to the fake SLURM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", "#!/bin/sh\nexit 1\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    sweep = tmp_path / "sweep"
    env = {**quiet_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    args = ["-m", *overrides, "data=digits", "optimizer.lr=0.001,0.01", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(
        [sys.executable, "-c", SLURM_DRIVER, *args],
        cwd=tmp_path,
        env={**env, "LIGHTDL_OUTPUTS": str(tmp_path / "outputs")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (submitted,) = (bin_dir / "sbatch_calls.txt").read_text().split()  # one array job
    return sweep, Path(submitted).read_text()


@pytest.mark.parametrize(
    "overrides, resources",
    [
        (
            ["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu"],
            {"nodes": "1", "ntasks-per-node": "1", "gpus-per-node": "1", "cpus-per-task": "8"}
            | {"time": "240", "mem": "32GB", "partition": "gpu", "job-name": "lightdl"},
        ),
        (  # DDP across 2 nodes x 4 GPUs: one task per GPU, the sizes taken from trainer.*
            ["hydra/launcher=slurm_ddp", "hydra.launcher.partition=gpu", "trainer=ddp"]
            + ["trainer.num_nodes=2", "trainer.devices=4"],
            {"nodes": "2", "ntasks-per-node": "4", "gpus-per-node": "4", "cpus-per-task": "8"}
            | {"time": "240", "mem": "64GB", "partition": "gpu", "job-name": "lightdl-ddp"},
        ),
        (
            ["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=2"]
            + ["hydra.launcher.timeout_min=30", "+hydra.launcher.additional_parameters.qos=low"],
            {"nodes": "1", "ntasks-per-node": "1", "cpus-per-task": "2", "time": "30"}
            | {"qos": "low", "gpus-per-node": None, "partition": None},
        ),
    ],
)
def test_slurm_submission_renders_resources_and_command(tmp_path, overrides, resources):
    from submitit.core.utils import DelayedSubmission

    sweep, script = render_slurm(tmp_path, *overrides)
    flags = dict(
        line.removeprefix("#SBATCH --").split("=", 1)
        for line in script.splitlines()
        if line.startswith("#SBATCH --") and "=" in line
    )
    for key, value in resources.items():
        assert flags.get(key) == value, key
    assert flags["array"] == "0-1%2"  # both jobs of the sweep, as one job array
    command = script.strip().splitlines()[-1]
    assert command.startswith("srun --unbuffered")
    assert command.endswith(f"{sys.executable} -u -m submitit.core._submit {sweep}/.submitit/%j")
    if overrides[0].endswith(("slurm_gpu", "slurm_ddp")):
        assert "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK" in script
    # What each array task unpickles and runs: lightdl's Hydra app with that job's overrides.
    for index, lr in enumerate(["0.001", "0.01"]):
        job = DelayedSubmission.load(sweep / f".submitit/4242_{index}/4242_{index}_submitted.pkl")
        assert job.function.task_function.__module__ == "lightdl.app"
        assert job.args[0] == [*task_overrides(overrides), "data=digits", f"optimizer.lr={lr}"]
        assert job.args[2] == index  # hydra.job.num: the job's folder in the sweep


def task_overrides(overrides: list[str]) -> list[str]:
    """The command line's overrides a job gets (Hydra keeps its own hydra* ones)."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra")]


@pytest.mark.slow
def test_submitit_local_runs_a_sweep_with_divided_threads(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(
        "-m",
        "hydra/launcher=submitit_local",
        *TINY,
        "optimizer.lr=0.001,0.01",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with (sweep / "summary.csv").open() as table:
        assert [r["status"] for r in csv.DictReader(table)] == ["completed", "completed"]
    assert (
        len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2
    )  # run by submitit's subprocesses
    cores = threads.cores()
    line = f"threads: {max(1, cores // 2)} torch thread(s) per job ({cores} cores, 2 jobs at once)"
    for job in ("0", "1"):
        assert line in next((sweep / job).glob("*.log")).read_text()
