"""data=npy: any dataset saved as .npy arrays, in memory or memory-mapped (data.mmap=true).

With mmap=true the inputs stay in the file: `MappedRows` stands in for a split's input tensor, so
batches come through the same TensorBatches path as in-memory data, and each batch reads only its
own rows. A dataset larger than memory trains with resident memory bounded by a few batches.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np
import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.files import npy_problem
from lightdl.errors import ConfigError, DataError

FIT_LIMIT = 10_000  # training examples a memory-mapped split fits its preprocessing on


class _Mapping:
    """A memory-mapped .npy file, shared by the views of its rows. Rows are read from the file
    with positioned reads (os.preadv) into the batch's own buffer, not through the mapping:
    touching a mapped page maps a whole page-cache folio around it (here 128 random rows mapped
    ~126 MB), so reading through the map would make the process's resident memory grow towards
    the file's size. The map itself gives the shape, dtype and data offset and holds no pages."""

    def __init__(self, array: np.memmap) -> None:
        self.array = array
        self.row_bytes = int(np.prod(array.shape[1:])) * array.dtype.itemsize
        self.offset = int(array.offset)
        self.fd = os.open(array.filename, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (sorted ascending) as a new array; runs of consecutive rows are one read."""
        block = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        flat = memoryview(block.reshape(-1).view(np.uint8))
        start = 0
        for stop in [*(np.flatnonzero(np.diff(rows) != 1) + 1).tolist(), len(rows)]:
            self._fill(flat[start * self.row_bytes : stop * self.row_bytes], int(rows[start]))
            start = stop
        return block

    def _fill(self, buffer: memoryview, row: int) -> None:
        """Read consecutive rows from `row` on into `buffer`; one read returns at most ~2 GiB."""
        position, done = self.offset + row * self.row_bytes, 0
        while done < len(buffer):
            got = os.preadv(self.fd, [buffer[done:]], position + done)
            if got == 0:
                raise DataError(f"{self.array.filename} ended early: it is truncated.")
            done += got


class MappedRows:
    """Rows of a memory-mapped array (or a view of some of them), read a batch at a time.

    `index_select(0, rows)` (a shuffled batch) and a slice (an evaluation batch) copy just those
    rows into a new float tensor, with the preprocessing applied; indexing with a tensor (carving
    the validation split) makes a view and reads nothing. The rows are read from the file, so
    resident memory holds the batch, not the epoch (see _Mapping).
    """

    lazy = True
    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, mapping: _Mapping, index: torch.Tensor | None = None, transform=None):
        self.mapping, self.index, self.transform = mapping, index, transform

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.mapping.array)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.mapping.array.shape[1:]))

    def __getitem__(self, key) -> MappedRows | torch.Tensor:
        if isinstance(key, slice):
            return self.index_select(0, torch.arange(len(self))[key])
        if isinstance(key, int):
            return self.index_select(0, torch.tensor([key]))[0]
        key = torch.as_tensor(key)
        if key.dtype == torch.bool:
            key = key.nonzero().squeeze(1)
        return MappedRows(self.mapping, self._rows(key), self.transform)

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        return index if self.index is None else self.index[index]

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("memory-mapped rows are selected along dimension 0 only")
        rows = self._rows(index.cpu()).numpy()
        order = np.argsort(rows, kind="stable")  # read in file order
        block = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        block[order] = self.mapping.read(rows[order])
        x = torch.from_numpy(block)
        return self.transform(x) if self.transform is not None else x

    def read(self) -> torch.Tensor:
        """All of these rows as one tensor (a small view: the training probe)."""
        return self.index_select(0, torch.arange(len(self)))

    def fit_sample(self, seed: int, limit: int = FIT_LIMIT) -> torch.Tensor:
        """Up to `limit` rows chosen with `seed`, untransformed: what the preprocessing fits on."""
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:limit]
        return MappedRows(self.mapping, self._rows(pick.sort().values)).read()

    def transformed(self, transform) -> MappedRows:
        return MappedRows(self.mapping, self.index, transform)

    def contiguous(self) -> MappedRows:
        return self


class NpyArrays(InMemoryDataModule):
    """A dataset given as .npy files: inputs (N, D) or (N, C, H, W) and integer labels (N,).

    train_x/train_y are required; test_x/test_y are optional (else `test_size` examples are carved
    from the training arrays with split_seed). num_classes: null takes the largest label + 1.
    mmap: true reads the inputs through a memory map a batch at a time (preprocessing is fitted on
    up to 10,000 training examples); false loads them into memory. Labels always load whole.
    Files are read with allow_pickle=False: a .npy holding pickled objects is refused.
    """

    def __init__(
        self,
        train_x: str,
        train_y: str,
        test_x: str | None = None,
        test_y: str | None = None,
        test_size: int = 0,
        num_classes: int | None = None,
        mmap: bool = False,
        **kwargs,
    ) -> None:
        if kwargs.get("classes") is not None:
            raise ConfigError("data=npy does not take data.classes; save the classes you want.")
        super().__init__(**kwargs)
        if (test_x is None) != (test_y is None):
            raise ConfigError("data.test_x and data.test_y go together: give both or neither.")
        self.paths = {"train": (train_x, train_y), "test": (test_x, test_y)}
        self.test_size, self.mmap = test_size, mmap
        self.arrays = {
            split: (self._inputs(x), self._labels(y))
            for split, (x, y) in self.paths.items()
            if x is not None
        }
        for split, (x, y) in self.arrays.items():
            if len(x) != len(y):
                raise DataError(
                    f"{self.paths[split][0]} holds {len(x)} examples but "
                    f"{self.paths[split][1]} holds {len(y)} labels."
                )
        shapes = {x.shape[1:] for x, _ in self.arrays.values()}
        if len(shapes) > 1:
            raise DataError(f"data.train_x and data.test_x differ in example shape: {shapes}.")
        self.kind = "image" if self.arrays["train"][0].ndim == 4 else "vector"
        found = max(int(y.max(initial=0)) for _, y in self.arrays.values()) + 1
        self.num_classes = num_classes if num_classes is not None else found
        if found > self.num_classes:
            raise DataError(
                f"{self.paths['train'][1]}: labels reach {found - 1}, but data.num_classes="
                f"{self.num_classes} allows 0..{self.num_classes - 1}."
            )

    def _read(self, path: str, mmap: bool) -> np.ndarray:
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"{path}: no such .npy file.")
        if file.stat().st_size == 0:
            raise DataError(f"{path} is empty: not a .npy array.")
        try:
            return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except PermissionError:
            raise DataError(f"{path} is unreadable: permission denied.") from None
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path} is {npy_problem(exc)}.") from None

    def _inputs(self, path: str) -> np.ndarray:
        array = self._read(path, self.mmap)
        if self.mmap and array.ndim > 1 and not array.flags.c_contiguous:
            raise DataError(
                f"{path} is stored in Fortran (column) order, so its rows are not contiguous in "
                "the file; save it with np.save(path, np.ascontiguousarray(x)) or use data.mmap=false."
            )
        if array.ndim not in (2, 4) or not np.issubdtype(array.dtype, np.number):
            raise DataError(
                f"{path}: inputs must be numbers shaped (N, D) or (N, C, H, W), got "
                f"{array.dtype} {array.shape}."
            )
        return array

    def _labels(self, path: str) -> np.ndarray:
        labels = self._read(path, mmap=False)
        if labels.ndim == 1 and len(labels) == 0:
            raise DataError(f"{path} holds no labels (an empty array).")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise DataError(
                f"{path}: labels must be non-negative integers shaped (N,), got "
                f"{labels.dtype} {labels.shape}."
            )
        return labels

    def load(self) -> dict[str, Split]:
        splits = {
            split: (self._tensor(x), torch.from_numpy(y.astype(np.int64)))
            for split, (x, y) in self.arrays.items()
        }
        if "test" not in splits and self.test_size:
            x, y = splits["train"]
            if self.test_size >= len(y):
                raise ConfigError(f"data.test_size={self.test_size} leaves no training data.")
            order = torch.randperm(
                len(y), generator=torch.Generator().manual_seed(self.split_seed + 1)
            )
            test, train = order[: self.test_size], order[self.test_size :]
            splits["train"], splits["test"] = (x[train], y[train]), (x[test], y[test])
        if "test" not in splits:
            raise ConfigError("data=npy needs data.test_x/test_y or data.test_size > 0.")
        return splits

    def _tensor(self, x: np.ndarray) -> torch.Tensor | MappedRows:
        if self.mmap:
            return MappedRows(_Mapping(x))
        return torch.from_numpy(np.asarray(x, dtype=np.float32))
