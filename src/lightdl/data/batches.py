"""Mini-batches as slices of in-memory tensors: no per-sample __getitem__, no collate."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


class TensorBatches:
    """An iterable of (x, y) mini-batches over tensors already in memory.

    Shuffled batches are index slices of one random permutation per epoch; the permutation is
    seeded from `seed` and the epoch number, so runs (and resumed runs) see the same order.
    Unshuffled batches are views, with no copy at all. A batch as large as the data (full-batch
    gradient descent) is the tensors themselves, shuffled or not: the order within one batch does
    not change its mean gradient, so copying the whole split each epoch would be wasted work.
    A trailing batch of one example joins the one before it (batch_size > 1): batch normalization
    cannot normalize a single example, and a lone example makes one step much noisier than the rest.

    `shard=(rank, world)` (DDP) gives this rank every world-th example of each epoch's order,
    starting at `rank`, after the order is padded by wrapping to a multiple of `world` (as
    torch's DistributedSampler does): every rank gets as many batches, and the ranks' k-th
    batches together are the k-th batch of world x batch_size that one process would take.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
        shard: tuple[int, int] = (0, 1),
        done_fn: Callable[[], int] | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"inputs and targets differ in length: {len(x)} vs {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch_fn = epoch_fn
        self.rank, self.world = shard
        self.done_fn = done_fn  # batches of this epoch trained so far (the trainer's count)
        self._epochs_started = 0
        self._resume: dict | None = None  # from a mid-epoch checkpoint: where the epoch stopped

    def state_dict(self) -> dict:
        """Where training is in this epoch, saved in each checkpoint (Lightning calls it for any
        iterable that has it): a resumed run then continues mid-epoch with the very next batch."""
        epoch = self.epoch_fn() if self.epoch_fn else self._epochs_started
        return {"epoch": epoch, "done": self.done_fn() if self.done_fn else 0}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state)

    def _skipped(self) -> int:
        """Batches to skip at the start of this iteration: those a resumed epoch already trained."""
        resume, self._resume = self._resume, None
        if resume is None or self.epoch_fn is None or resume["epoch"] != self.epoch_fn():
            return 0
        return resume["done"]

    def _size(self) -> int:
        """Examples this rank takes per epoch."""
        return -(-len(self.x) // self.world)

    def _bounds(self) -> list[tuple[int, int]]:
        n, bs = self._size(), self.batch_size
        bounds = [(start, min(start + bs, n)) for start in range(0, n, bs)]
        if bs > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.x), self.batch_size
        skip = self._skipped()
        if self.world == 1 and (not self.shuffle or bs >= n):
            for start, stop in self._bounds()[skip:]:
                yield self.x[start:stop], self.y[start:stop]
            return
        order = self._order(n)
        for start, stop in self._bounds()[skip:]:
            index = order[start:stop]
            yield self.x.index_select(0, index), self.y.index_select(0, index)

    def _order(self, n: int) -> torch.Tensor:
        """This epoch's example order (seeded by the epoch), and this rank's share of it."""
        if self.shuffle:
            epoch = self.epoch_fn() if self.epoch_fn else self._epochs_started
            self._epochs_started += 1
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world > 1:
            padded = self._size() * self.world
            order = torch.cat([order, order[: padded - n]])[self.rank :: self.world]
        return order.to(self.x.device)


class Chunks:
    """Lists of up to `size` consecutive batches of `batches` (trainer.steps_per_call): one
    Lightning training_step call then runs `size` optimizer steps (BaseTask._train_chunk)."""

    def __init__(self, batches, size: int) -> None:
        self.batches, self.size = batches, size

    def __len__(self) -> int:
        return -(-len(self.batches) // self.size)

    def state_dict(self) -> dict:
        """The inner batches' state, counted in batches (done chunks x size)."""
        state = self.batches.state_dict()
        return {**state, "done": state["done"] * self.size}

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)

    def __iter__(self) -> Iterator[list]:
        chunk: list = []
        for batch in self.batches:
            chunk.append(batch)
            if len(chunk) == self.size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
