"""Several processes for one run (trainer=ddp): who starts the ranks, and which rank this is.

Lightning's own DDP launcher starts each new rank by running the command line again. Inside a
Hydra multirun that command line is the whole sweep, so every rank would run the sweep again; it
also leaves LOCAL_RANK set in the first process, so the sweep's next job would wait for ranks that
never come. lightdl starts the ranks of each job itself instead (`ranks`): the job's own process
is rank 0 and trains in place, and ranks 1..N-1 are `python -m lightdl.rank` processes given the
job's resolved config and run directory. They write nothing but their own log, `ddp/rank<i>.log`.
Ranks started from outside (torchrun, SLURM's srun) are used as they are.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lightdl.errors import ConfigError

RANK_VARS = ("RANK", "SLURM_PROCID", "LOCAL_RANK")  # the global rank, by who set it
LAUNCH_VARS = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK")
WAIT_SECONDS = 120  # for the other ranks to finish after rank 0 has
READY_VAR = "LIGHTDL_DDP_READY"  # the folder where the ranks lightdl started say they are ready
_children: list[tuple[subprocess.Popen, Path]] = []  # the ranks this process started for its job


def global_rank() -> int:
    """This process's rank among all of the run's processes; 0 outside a distributed launch."""
    for name in RANK_VARS:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def started_outside() -> bool:
    """Were this run's ranks started by torchrun or SLURM (not by lightdl)?"""
    return any(name in os.environ for name in ("LOCAL_RANK", "RANK")) or (
        int(os.environ.get("SLURM_NTASKS", "1")) > 1
    )


def _strategy(cfg: DictConfig) -> object:
    return (cfg.get("trainer") or {}).get("strategy", "auto")


def local_processes(cfg: DictConfig) -> int:
    """Processes the trainer asks for on this machine: trainer.devices under a ddp strategy, else 1
    (check() refuses the device settings this cannot count)."""
    trainer = cfg.get("trainer") or {}
    if not str(_strategy(cfg)).startswith("ddp"):
        return 1
    devices = trainer.get("devices", 1)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return max(devices, 1)
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return len(devices)
    text = str(devices).strip()
    if "," not in text and text.isdigit():  # "2": Lightning reads a count
        return max(int(text), 1)
    return len([d for d in text.split(",") if d.strip()])  # "0,1" or "1,": GPU ids


def world_size(cfg: DictConfig) -> int:
    """Processes of the whole run: local processes x trainer.num_nodes."""
    return local_processes(cfg) * int((cfg.get("trainer") or {}).get("num_nodes") or 1)


def one_process(cfg: DictConfig) -> DictConfig:
    """`cfg` with the trainer on one process (eval and tune=lr_find of a DDP-trained run)."""
    single = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    single.trainer.update(strategy="auto", devices=1, num_nodes=1)
    return single


def check(cfg: DictConfig) -> None:
    """Refuse what lightdl's DDP cannot do, in one sentence each (validate calls this)."""
    trainer = cfg.get("trainer") or {}
    strategy = _strategy(cfg)
    devices = trainer.get("devices", 1)
    if not isinstance(strategy, str):
        if devices != 1:
            raise ConfigError(
                "trainer.strategy as an object is not supported with several devices; use "
                "trainer=ddp (trainer.strategy=ddp), whose ranks lightdl starts itself."
            )
        return
    if strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook")):
        raise ConfigError(
            f"trainer.strategy={strategy} is not supported: use trainer=ddp, which starts each "
            "job's ranks itself (inside sweeps too) and keeps the run's summary in this process."
        )
    if not strategy.startswith("ddp"):
        if strategy != "auto" and devices != 1:
            raise ConfigError(
                f"trainer.strategy={strategy} with several devices is not supported; use "
                "trainer=ddp (DistributedDataParallel)."
            )
        return
    countable = (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1) or (
        isinstance(devices, str) and all(d.strip().isdigit() for d in devices.split(",") if d)
    )
    if not (countable or OmegaConf.is_list(devices)):
        raise ConfigError(
            f"trainer.devices={devices!r} under trainer=ddp must say how many processes to "
            "start: an integer >= 1 or a list of GPU ids."
        )
    if local_processes(cfg) == 1:
        return
    steps = trainer.get("steps_per_call", 1)
    if steps != 1:
        raise ConfigError(
            f"trainer.steps_per_call={steps} cannot be combined with trainer=ddp: DDP syncs "
            "gradients once per Lightning call; set trainer.steps_per_call=1."
        )
    if int(trainer.get("num_nodes") or 1) > 1 and not started_outside():
        raise ConfigError(
            f"trainer.num_nodes={trainer.num_nodes} needs the ranks of every node started by "
            "torchrun or SLURM (see the README's 'Several processes and machines'); lightdl "
            "starts ranks on this machine only."
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def ranks(cfg: DictConfig, run_dir: Path) -> Iterator[None]:
    """Run the block as rank 0 of `trainer.devices` processes on this machine, starting the other
    ranks first, when the config asks for DDP and nobody else started the ranks; else just run it.

    The environment variables Lightning reads (MASTER_ADDR/PORT, WORLD_SIZE, NODE_RANK,
    LOCAL_RANK) and torch's thread count are this job's only: they are put back afterwards, and the
    process group is destroyed, so the next job of a sweep starts clean.
    """
    n = local_processes(cfg)
    if n == 1 or started_outside():
        yield
        return
    import torch

    from lightdl.threads import cores

    folder = run_dir / "ddp"
    folder.mkdir(parents=True, exist_ok=True)
    # the job's resolved config (every rank trains the same) and the group choices callbacks look
    # up (paths.chosen), handed over on each rank's stdin: nothing resolved (an ${oc.env:...}
    # secret) is written to disk
    handed = OmegaConf.to_yaml(
        OmegaConf.create({"config": OmegaConf.to_container(cfg, resolve=True), "hydra": _hydra()})
    )
    threads = max(1, cores() // n)
    launch = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "WORLD_SIZE": str(n),
        "NODE_RANK": "0",
        "LOCAL_RANK": "0",
    }
    # a one-task SLURM job: Lightning would read the ranks from SLURM's variables, not ours
    slurm = [name for name in os.environ if name.startswith("SLURM_")]
    own = (*LAUNCH_VARS, "OMP_NUM_THREADS", READY_VAR, *slurm)
    saved = {name: os.environ.get(name) for name in own}
    saved_threads = torch.get_num_threads()
    for name in slurm:
        del os.environ[name]
    for stale in folder.glob("*.ready"):  # a run resumed in place (ckpt_path=last)
        stale.unlink()
    os.environ.update(launch, **{READY_VAR: str(folder)})
    os.environ["OMP_NUM_THREADS"] = str(threads)  # Lightning then leaves torch's threads alone
    torch.set_num_threads(threads)
    children = [_start_rank(i, handed, run_dir, folder) for i in range(1, n)]
    _children[:] = children
    try:
        yield
        _wait(children)
    finally:
        _children.clear()
        for child, _ in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(saved_threads)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def ready() -> None:
    """Called by train right before fit, where the process group forms. A rank lightdl started
    says it got there; rank 0 waits until every such rank has, so a rank that failed while
    building is reported at once, not after the rendezvous' 30-minute timeout."""
    folder = os.environ.get(READY_VAR)
    if folder is None:
        return
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank != 0:
        (Path(folder) / f"rank{rank}.ready").touch()
        return
    while pending := [(c, log) for c, log in _children if not log.with_suffix(".ready").exists()]:
        for child, log_path in pending:
            code = child.poll()
            if code is not None:
                raise RuntimeError(
                    f"a DDP rank exited with code {code} before training; see {log_path}"
                )
        time.sleep(0.05)


def _hydra() -> dict | None:
    """The parts of the job's Hydra node that lightdl reads (group choices, overrides, mode)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    node = HydraConfig.get()
    return {
        "mode": node.mode.name if node.mode is not None else None,
        "runtime": {
            "choices": OmegaConf.to_container(node.runtime.choices),
            "output_dir": node.runtime.output_dir,
        },
        "overrides": {"task": list(node.overrides.task)},
    }


def load_hydra(kept: DictConfig) -> None:
    """Make the job's Hydra node (as _hydra kept it) this rank's HydraConfig."""
    from hydra.conf import HydraConf
    from hydra.core.hydra_config import HydraConfig

    node = OmegaConf.merge(OmegaConf.structured(HydraConf), kept)
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": node}))


def _start_rank(
    rank: int, handed: str, run_dir: Path, folder: Path
) -> tuple[subprocess.Popen, Path]:
    log_path = folder / f"rank{rank}.log"
    env = {**os.environ, "LOCAL_RANK": str(rank)}
    with log_path.open("w") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "lightdl.rank", str(run_dir)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        child.stdin.write(handed)
        child.stdin.close()
    except BrokenPipeError:  # it died at once; ready() reports its exit code and log
        pass
    return child, log_path


def _wait(children: list[tuple[subprocess.Popen, Path]]) -> None:
    """The other ranks end right after rank 0 (they ran the same steps); a rank that failed or
    hangs fails the job, naming its log."""
    for child, log_path in children:
        try:
            code = child.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"a DDP rank did not finish {WAIT_SECONDS} s after rank 0; see {log_path}"
            ) from None
        if code != 0:
            raise RuntimeError(f"a DDP rank exited with code {code}; see {log_path}")
