"""`python -m lightdl.rank CONFIG RUN_DIR`: one of ranks 1..N-1 of a trainer=ddp job.

lightdl.distributed starts these with the job's resolved config and the DDP environment
(MASTER_ADDR/PORT, WORLD_SIZE, LOCAL_RANK); rank 0 is the job's own process. A rank trains the
same steps on its slice of each epoch and writes nothing itself: Lightning's loggers and
checkpoints write from rank 0 only, and the summary is rank 0's.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from omegaconf import OmegaConf

    from lightdl.train import train

    config_file, run_dir = argv
    hydra_file = Path(config_file).with_name("hydra.yaml")
    if hydra_file.is_file():  # the job's Hydra node: group choices (paths.chosen) as in rank 0
        from lightdl.distributed import load_hydra

        load_hydra(hydra_file)
    train(OmegaConf.load(config_file), Path(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
