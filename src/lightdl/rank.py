"""`python -m lightdl.rank RUN_DIR`: one of ranks 1..N-1 of a trainer=ddp job.

lightdl.distributed starts these with the DDP environment (MASTER_ADDR/PORT, WORLD_SIZE,
LOCAL_RANK) and writes the job's resolved config and its Hydra group choices to their stdin (so
nothing resolved, such as a secret read from the environment, lands on disk); rank 0 is the job's
own process. A rank trains the same steps on its slice of each epoch and writes nothing itself:
Lightning's loggers and checkpoints write from rank 0 only, and the summary is rank 0's.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from omegaconf import OmegaConf

    from lightdl.distributed import load_hydra
    from lightdl.train import train

    (run_dir,) = argv
    handed = OmegaConf.create(sys.stdin.read())
    if handed.hydra is not None:  # the job's group choices (paths.chosen), as rank 0 has them
        load_hydra(handed.hydra)
    train(handed.config, Path(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
