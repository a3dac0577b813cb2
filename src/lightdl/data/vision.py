"""Fashion-MNIST and MNIST: 28x28 grayscale images in 10 classes, read from IDX files."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from lightdl.data.base import InMemoryDataModule, Split
from lightdl.data.idx import locate, read_idx
from lightdl.errors import DataError

_TRAIN_X, _TRAIN_Y = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
_TEST_X, _TEST_Y = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


class IDXImages(InMemoryDataModule):
    """An image-classification dataset stored as four IDX files (train/test images and labels)."""

    title: ClassVar[str]
    files: ClassVar[dict[str, str]]
    system_dirs: ClassVar[list[str]] = []
    mirrors: ClassVar[list[str]]
    hint: ClassVar[str]
    num_classes = 10
    kind = "image"

    def __init__(self, data_dir: str | None = None, cache_dir: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.cache_dir = cache_dir

    def load(self) -> dict[str, Split]:
        paths = locate(
            self.title,
            self.files,
            self.data_dir,
            self.system_dirs,
            self.cache_dir,
            self.mirrors,
            self.hint,
        )
        return {
            split: self._split(paths[x_name], paths[y_name])
            for split, (x_name, y_name) in (
                ("train", (_TRAIN_X, _TRAIN_Y)),
                ("test", (_TEST_X, _TEST_Y)),
            )
        }

    def _split(self, x_path: Path, y_path: Path) -> Split:
        """(images, labels) of one split, each file checked: shapes, counts and label range."""
        images, labels = read_idx(x_path), read_idx(y_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{x_path} holds {images.dtype} data of shape {images.shape}, not images "
                "(expected N x height x width unsigned bytes): the wrong file."
            )
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{y_path} holds {labels.dtype} data of shape {labels.shape}, not labels "
                "(expected N integers): the wrong file."
            )
        if len(labels) != len(images):
            raise DataError(
                f"{y_path} holds {len(labels)} labels but {x_path} holds {len(images)} images."
            )
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise DataError(
                f"{y_path} has labels outside 0..{self.num_classes - 1} (found {int(bad[0])})."
            )
        return _images(images), _labels(labels)


def _images(array) -> torch.Tensor:
    return torch.from_numpy(array.copy()).to(torch.float32).div_(255.0).unsqueeze(1)


def _labels(array) -> torch.Tensor:
    return torch.from_numpy(array.astype("int64"))


class FashionMNIST(IDXImages):
    """Zalando's Fashion-MNIST: clothing items (T-shirt, trouser, ... ankle boot)."""

    title = "Fashion-MNIST"
    files = {
        _TRAIN_X: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        _TRAIN_Y: "25c81989df183df01b3e8a0aad5dffbe",
        _TEST_X: "bef4ecab320f06d8554ea6380940ec79",
        _TEST_Y: "bb300cfdad3c16e7a12a480ee83cd310",
    }
    system_dirs = ["/usr/share/datasets/fashion-mnist"]
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    hint = (
        "Install it with `apt-get install dataset-fashion-mnist`, or put the four IDX files in a "
        "folder and pass data.data_dir=FOLDER."
    )


class MNIST(IDXImages):
    """LeCun's MNIST handwritten digits."""

    title = "MNIST"
    files = {
        _TRAIN_X: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        _TRAIN_Y: "d53e105ee54ea40749a09fcbcd1e9432",
        _TEST_X: "9fb629c4189551a2d022fa330f9573f3",
        _TEST_Y: "ec29112dd5afa0611ce80d1b7f02629c",
    }
    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    hint = "Put the four MNIST IDX files in a folder and pass data.data_dir=FOLDER."
