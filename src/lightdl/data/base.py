"""InMemoryDataModule: the Lightning DataModule every lightdl dataset builds on."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from lightdl.data.batches import TensorBatches
from lightdl.data.spec import DataSpec

Split = tuple[torch.Tensor, torch.Tensor]


class InMemoryDataModule(L.LightningDataModule):
    """Loads a dataset once into tensors, carves a validation split, fits preprocessing on train only.

    Subclasses implement `load()` returning {"train": (x, y), "test": (x, y)} and optionally "val";
    when "val" is absent, `val_size` examples are carved from train with `split_seed`.
    """

    num_classes: int
    kind: str

    def __init__(
        self,
        batch_size: int = 128,
        val_size: int = 0,
        split_seed: int = 0,
        eval_batch_size: int = 1024,
        preprocess: Any = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.eval_batch_size = eval_batch_size
        self.preprocess = preprocess
        self.splits: dict[str, Split] = {}

    def load(self) -> dict[str, Split]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = dict(self.load())
        if "val" not in splits and self.val_size:
            x, y = splits["train"]
            if self.val_size >= len(x):
                from lightdl.errors import ConfigError

                raise ConfigError(
                    f"data.val_size={self.val_size} leaves no training data ({len(x)} examples)."
                )
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
            val, train = order[: self.val_size], order[self.val_size :]
            splits["train"], splits["val"] = (x[train], y[train]), (x[val], y[val])
        if self.preprocess is not None:
            self.preprocess.fit(splits["train"][0])
            splits = {k: (self.preprocess(x), y) for k, (x, y) in splits.items()}
        self.splits = {k: (x.contiguous(), y.contiguous()) for k, (x, y) in splits.items()}

    @property
    def spec(self) -> DataSpec:
        self.setup()
        x = self.splits["train"][0]
        return DataSpec(
            input_shape=tuple(x.shape[1:]), num_classes=self.num_classes, kind=self.kind
        )

    def example_input(self, n: int = 2) -> torch.Tensor:
        self.setup()
        return self.splits["train"][0][:n]

    def _epoch(self) -> int:
        trainer = self.trainer
        return trainer.current_epoch if trainer is not None else 0

    def train_dataloader(self) -> TensorBatches:
        x, y = self.splits["train"]
        return TensorBatches(
            x, y, self.batch_size, shuffle=True, seed=self.split_seed, epoch_fn=self._epoch
        )

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(*self.splits["val"], self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        return TensorBatches(*self.splits["test"], self.eval_batch_size)
