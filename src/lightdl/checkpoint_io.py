"""AtomicCheckpointIO: a checkpoint file is either the previous one or the new one, never half.

Lightning's own save writes the checkpoint to a temporary file in the system's temp folder and
moves it into place; when that folder is on another filesystem than the run (a tmpfs /tmp, a
cluster's scratch), the move is a copy, and a process killed during it leaves a truncated
last.ckpt behind. This writes the temporary file next to the checkpoint, flushes it to disk and
renames it over the old one (os.replace: atomic within one filesystem).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        target = Path(path)
        if "://" in str(path):  # a remote filesystem: Lightning's fsspec transaction
            return super().save_checkpoint(checkpoint, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            with open(tmp, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
