"""InMemoryDataModule: the Lightning DataModule every lightdl dataset builds on."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from lightdl.data.batches import Chunks, TensorBatches
from lightdl.data.spec import DataSpec

Split = tuple[torch.Tensor, torch.Tensor]
FULL = "full"  # data.batch_size=full: the whole training split in one batch
UNLABELLED = ("drop", "keep")  # data.unlabelled: what train_per_class does with the other examples
NO_LABEL = -1  # the label of a training example kept without its label (data.unlabelled=keep)


class InMemoryDataModule(L.LightningDataModule):
    """Loads a dataset once into tensors, carves a validation split, fits preprocessing on train only.

    Subclasses implement `load()` returning {"train": (x, y), "test": (x, y)} and optionally "val";
    when "val" is absent, `val_size` examples are carved from train with `split_seed`.

    batch_size: an integer (1 is pure SGD), or "full" for full-batch gradient descent (one batch,
    one optimizer step per epoch). train_per_class keeps that many labelled training examples per
    class; `unlabelled` says what happens to the rest: "drop" removes them, "keep" keeps the
    images with label NO_LABEL (-1), for models that learn from unlabelled images (model=sgan).
    label_noise: the fraction of training labels replaced by a
    different random class, chosen with `split_seed`; val and test labels stay clean.
    scale_lr_with_batch: `lr_scale` becomes the global batch size (train batch size x DDP
    processes) / lr_reference_batch (the linear scaling rule), a factor for optimizer.lr, at most max_lr_scale when set; otherwise it is 1.0.
    """

    num_classes: int
    kind: str
    steps_per_call = 1  # trainer.steps_per_call: batches per training_step call
    processes = 1  # trainer=ddp: processes training together (each takes train_batch_size)

    def __init__(
        self,
        batch_size: int | str = 128,
        val_size: int = 0,
        split_seed: int = 0,
        eval_batch_size: int = 1024,
        preprocess: Any = None,
        label_noise: float = 0.0,
        scale_lr_with_batch: bool = False,
        lr_reference_batch: int = 128,
        max_lr_scale: float | None = None,
        classes: list[int] | None = None,
        train_per_class: int | None = None,
        unlabelled: str = "drop",
    ) -> None:
        super().__init__()
        if batch_size != FULL and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1 or '{FULL}', got {batch_size!r}")
        if not 0.0 <= label_noise < 1.0:
            raise ValueError(f"label_noise must be a fraction in [0, 1), got {label_noise!r}")
        if lr_reference_batch < 1:
            raise ValueError(f"lr_reference_batch must be >= 1, got {lr_reference_batch!r}")
        self.batch_size = batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.eval_batch_size = eval_batch_size
        self.preprocess = preprocess
        self.label_noise = label_noise
        self.scale_lr_with_batch = scale_lr_with_batch
        self.lr_reference_batch = lr_reference_batch
        self.max_lr_scale = max_lr_scale
        self.classes = list(classes) if classes is not None else None
        self.train_per_class = train_per_class
        if unlabelled not in UNLABELLED:
            from lightdl.errors import ConfigError

            raise ConfigError(
                f"data.unlabelled must be one of {list(UNLABELLED)}, got {unlabelled!r}."
            )
        if unlabelled == "keep" and train_per_class is None:
            from lightdl.errors import ConfigError

            raise ConfigError(
                "data.unlabelled=keep keeps the images beyond data.train_per_class labelled ones "
                "per class, so set data.train_per_class too."
            )
        if unlabelled == "keep" and label_noise:
            from lightdl.errors import ConfigError

            raise ConfigError(
                "data.label_noise cannot be combined with data.unlabelled=keep (it would give "
                "unlabelled images a class); use one of them."
            )
        self.unlabelled = unlabelled
        if self.classes is not None:
            self._check_classes()
            self.num_classes = len(self.classes)  # relabelled 0..k-1 in the order given
        self.splits: dict[str, Split] = {}
        self.clean_train_labels: torch.Tensor | None = None  # set when label_noise > 0
        self.noisy_mask: torch.Tensor | None = None  # True where a training label was replaced

    def load(self) -> dict[str, Split]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = dict(self.load())
        if self.classes is not None:
            splits = {k: self._keep_classes(x, y) for k, (x, y) in splits.items()}
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
        if self.train_per_class is not None:
            splits["train"] = self._few_labels(*splits["train"])
        if self.label_noise:
            x, y = splits["train"]
            splits["train"] = (x, self._corrupt(y))
        if self.kind == "tokens":
            self._skip_preprocess()
        if self.preprocess is not None:
            self._preprocess(splits)
        self.splits = {k: (x.contiguous(), y.contiguous()) for k, (x, y) in splits.items()}

    def _preprocess(self, splits: dict[str, Split]) -> None:
        """Fit the preprocessing on the training inputs and apply it to every split; memory-mapped
        inputs (data.mmap=true) fit on a sample and apply it as each batch is read."""
        x = splits["train"][0]
        lazy = getattr(x, "lazy", False)
        self.preprocess.fit(x.fit_sample(self.split_seed + 5) if lazy else x)
        for k, (x, y) in splits.items():
            splits[k] = (x.transformed(self.preprocess) if lazy else self.preprocess(x), y)

    def _skip_preprocess(self) -> None:
        """Token ids are not preprocessed: the default (standardize) and none are passed over,
        any other preprocess option is refused, since it would silently do nothing."""
        from lightdl.data.preprocess import Identity, Standardize
        from lightdl.errors import ConfigError

        if self.preprocess is not None and not isinstance(self.preprocess, Identity | Standardize):
            raise ConfigError(
                f"preprocess={type(self.preprocess).__name__} applies to real-valued inputs, but "
                "this data is token ids; use preprocess=none."
            )
        self.preprocess = None

    def _check_classes(self) -> None:
        from lightdl.errors import ConfigError

        total = type(self).num_classes
        bad = [c for c in self.classes if not isinstance(c, int) or not 0 <= c < total]
        if bad or len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ConfigError(
                f"data.classes must list at least 2 distinct class indices in [0, {total}), "
                f"got {self.classes}."
            )
        if self.train_per_class is not None and (
            not isinstance(self.train_per_class, int) or self.train_per_class < 1
        ):
            raise ConfigError(
                f"data.train_per_class must be an integer >= 1, got {self.train_per_class!r}."
            )

    def _keep_classes(self, x: torch.Tensor, y: torch.Tensor) -> Split:
        """Only the examples of `classes`, relabelled 0..k-1 in the order the classes are listed."""
        wanted = torch.tensor(self.classes)
        keep = torch.isin(y, wanted)
        relabel = torch.full((int(y.max()) + 1,), -1, dtype=torch.int64)
        relabel[wanted] = torch.arange(len(wanted))
        return x[keep], relabel[y[keep]]

    def _few_labels(self, x: torch.Tensor, y: torch.Tensor) -> Split:
        """train_per_class examples of each class, chosen with split_seed (a small labelled set);
        with unlabelled=keep every image stays and the others' labels become NO_LABEL."""
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed + 4))
        picked = torch.cat(
            [order[y[order] == c][: self.train_per_class] for c in range(self.num_classes)]
        )
        picked = picked.sort().values
        if self.unlabelled == "keep":
            kept = torch.full_like(y, NO_LABEL)
            kept[picked] = y[picked]
            return x, kept
        return x[picked], y[picked]

    def _corrupt(self, labels: torch.Tensor) -> torch.Tensor:
        """Replace round(label_noise * n) training labels, chosen with split_seed, by another class."""
        if self.num_classes < 2:
            raise ValueError("label_noise needs at least 2 classes")
        generator = torch.Generator().manual_seed(self.split_seed + 2)  # +1 is the test split's
        count = round(self.label_noise * len(labels))
        index = torch.randperm(len(labels), generator=generator)[:count]
        # adding 1..C-1 modulo C gives each of the other classes with equal chance, never the same
        shift = torch.randint(1, self.num_classes, (count,), generator=generator)
        noisy = labels.clone()
        noisy[index] = (labels[index] + shift) % self.num_classes
        self.clean_train_labels = labels
        self.noisy_mask = torch.zeros(len(labels), dtype=torch.bool)
        self.noisy_mask[index] = True
        return noisy

    @property
    def train_batch_size(self) -> int:
        """Examples per training batch: the whole training split for "full"."""
        self.setup()
        n = len(self.splits["train"][0])
        return n if self.batch_size == FULL else min(self.batch_size, n)

    @property
    def lr_scale(self) -> float:
        """Factor for optimizer.lr: train batch size / lr_reference_batch, or 1.0 when scaling is off."""
        if not self.scale_lr_with_batch:
            return 1.0
        scale = self.train_batch_size * self.processes / self.lr_reference_batch  # global batch
        return scale if self.max_lr_scale is None else min(scale, self.max_lr_scale)

    @property
    def spec(self) -> DataSpec:
        self.setup()
        x = self.splits["train"][0]
        return DataSpec(
            input_shape=tuple(x.shape[1:]), num_classes=self.num_classes, kind=self.kind
        )

    def train_probe(self, limit: int = 5000) -> Split | None:
        """A fixed random sample of the training split as large as the validation split (at most
        `limit`), for measuring training accuracy in eval mode; None without a validation split."""
        self.setup()
        if "val" not in self.splits:
            return None
        x, y = self.splits["train"]
        n = min(len(self.splits["val"][1]), len(x), limit)
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed + 3))
        x = x[pick[:n]]
        return x.read() if getattr(x, "lazy", False) else x, y[pick[:n]]

    def example_input(self, n: int = 2) -> torch.Tensor:
        self.setup()
        return self.splits["train"][0][:n]

    def _epoch(self) -> int:
        trainer = self.trainer
        return trainer.current_epoch if trainer is not None else 0

    def _batches_done(self) -> int:
        """Training batches (chunks under steps_per_call) of this epoch whose step is done: what a
        checkpoint saved now has trained (Lightning counts a batch processed after its step)."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer else 0

    def resident(self, split: str) -> Split:
        """The split's tensors on the trainer's device, moved there once and kept there.

        On a GPU the whole split lives in device memory, so a batch is an index_select on the
        device (no host-to-device copy per step); on the CPU nothing moves.
        """
        x, y = self.splits[split]
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else x.device
        if x.device != device and not getattr(x, "lazy", False):  # mapped rows: batch by batch
            x, y = x.to(device), y.to(device)
            self.splits[split] = (x, y)
        return x, y

    def train_dataloader(self) -> TensorBatches | Chunks:
        """The training batches; lists of `steps_per_call` of them when trainer.steps_per_call > 1
        (set by build.build_datamodule), which the task steps through in one call."""
        batches = self.train_batches()
        return batches if self.steps_per_call == 1 else Chunks(batches, self.steps_per_call)

    def train_batches(self) -> TensorBatches:
        x, y = self.resident("train")
        return TensorBatches(
            x,
            y,
            self.train_batch_size,
            shuffle=True,
            seed=self.split_seed,
            epoch_fn=self._epoch,
            shard=self.shard(),
            done_fn=self._batches_done,
        )

    def shard(self) -> tuple[int, int]:
        """(rank, world size) of the training process: each DDP rank trains on its own slice of
        every epoch (validation and test are scored whole on every rank, so their metrics are
        exactly the single-process ones)."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(*self.resident("val"), self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        return TensorBatches(*self.resident("test"), self.eval_batch_size)
