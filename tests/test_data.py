"""IDX reading and the data resolution order, in-memory batching, splits and preprocessing."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from lightdl.data import idx
from lightdl.data.batches import TensorBatches
from lightdl.data.preprocess import Standardize
from lightdl.data.vision import FashionMNIST
from lightdl.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_fake_mnist(folder, n_train=50, n_test=20, compress=True):
    """Four small IDX files with the official names; returns {name: md5} as stored."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    sums = {}
    for name, array in arrays.items():
        data = gzip.compress(idx_bytes(array)) if compress else idx_bytes(array)
        path = folder / (name if compress else name.removesuffix(".gz"))
        path.write_bytes(data)
        sums[name] = hashlib.md5(data).hexdigest()
    return sums


def test_read_idx_roundtrip_raw_and_gzip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    (tmp_path / "b.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(idx.read_idx(tmp_path / "a"), array)
    assert np.array_equal(idx.read_idx(tmp_path / "b.gz"), array)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x12\x34\x08\x01\x00\x00\x00\x02ab", "bad magic"),
        (bytes([0, 0, 8, 2]) + struct.pack(">2I", 3, 3) + b"\x00" * 8, "corrupt"),
        (bytes([0, 0, 8, 3]) + b"\x00\x00", "truncated header"),
        (b"", "bad magic"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, payload, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message):
        idx.read_idx(path)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        idx.read_idx(path)


def test_data_dir_comes_first_and_raw_files_work(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mine", compress=False)
    monkeypatch.setattr(FashionMNIST, "system_dirs", [str(tmp_path / "nowhere")])
    dm = FashionMNIST(data_dir=str(tmp_path / "mine"), batch_size=8, val_size=10)
    dm.setup()
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [40, 10, 20]
    assert dm.spec.input_shape == (1, 28, 28) and dm.spec.num_classes == 10
    assert 0.0 <= float(dm.splits["train"][0].min()) and float(dm.splits["train"][0].max()) <= 1.0


def test_download_with_checksum_when_nothing_is_local(tmp_path, monkeypatch):
    sums = write_fake_mnist(tmp_path / "mirror")
    monkeypatch.setattr(FashionMNIST, "system_dirs", [str(tmp_path / "nowhere")])
    monkeypatch.setattr(FashionMNIST, "files", sums)
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"file://{tmp_path / 'mirror'}/"])
    dm = FashionMNIST(cache_dir=str(tmp_path / "cache"), batch_size=8, val_size=5)
    dm.setup()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(sums)
    assert len(dm.splits["train"][0]) == 45


def test_bad_checksum_keeps_nothing_and_all_failures_are_listed(tmp_path, monkeypatch):
    sums = write_fake_mnist(tmp_path / "mirror")
    monkeypatch.setattr(FashionMNIST, "system_dirs", [str(tmp_path / "system")])
    monkeypatch.setattr(FashionMNIST, "files", {k: "0" * 32 for k in sums})
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"file://{tmp_path / 'mirror'}/"])
    dm = FashionMNIST(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        dm.setup()
    text = str(err.value)
    assert str(tmp_path / "system") in text and str(tmp_path / "cache") in text
    assert "md5" in text and "apt-get install dataset-fashion-mnist" in text
    assert not any((tmp_path / "cache").iterdir())


def test_missing_data_dir_names_it(tmp_path):
    with pytest.raises(DataError, match="does not hold the Fashion-MNIST files"):
        FashionMNIST(data_dir=str(tmp_path)).setup()


def test_validation_split_is_fixed_by_seed(tmp_path):
    write_fake_mnist(tmp_path / "d")
    first = FashionMNIST(data_dir=str(tmp_path / "d"), val_size=10, split_seed=3)
    again = FashionMNIST(data_dir=str(tmp_path / "d"), val_size=10, split_seed=3)
    other = FashionMNIST(data_dir=str(tmp_path / "d"), val_size=10, split_seed=4)
    for dm in (first, again, other):
        dm.setup()
    assert torch.equal(first.splits["val"][0], again.splits["val"][0])
    assert not torch.equal(first.splits["val"][0], other.splits["val"][0])


def test_shuffled_batches_cover_every_example_once_and_change_per_epoch():
    x = torch.arange(103).float().unsqueeze(1)
    batches = TensorBatches(x, torch.arange(103), batch_size=10, shuffle=True, seed=1)
    epoch1 = torch.cat([b[0] for b in batches]).squeeze(1)
    epoch2 = torch.cat([b[0] for b in batches]).squeeze(1)
    assert len(batches) == 11
    assert sorted(epoch1.tolist()) == list(range(103)) == sorted(epoch2.tolist())
    assert not torch.equal(epoch1, epoch2)


def test_unshuffled_batches_are_views():
    x = torch.zeros(20, 3)
    first = next(iter(TensorBatches(x, torch.zeros(20), batch_size=8)))[0]
    assert first.data_ptr() == x.data_ptr()


def test_standardize_uses_training_statistics_only():
    train = torch.randn(500, 4) * 3 + 5
    test = torch.randn(200, 4) * 10 - 50
    prep = Standardize()
    prep.fit(train)
    out = prep(train)
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(out.std(0), torch.ones(4), atol=1e-3)
    assert torch.allclose(prep(test), (test - train.mean(0)) / train.std(0), atol=1e-4)


def test_fashion_mnist_split_is_55k_5k_10k_when_installed():
    from pathlib import Path

    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist is not installed")
    dm = FashionMNIST(val_size=5000, split_seed=0)
    dm.setup()
    assert [len(dm.splits[s][0]) for s in ("train", "val", "test")] == [55000, 5000, 10000]


def test_toy_data_shapes(tmp_path):
    from conftest import make_cfg

    from lightdl import build

    for name, shape, classes in (("digits", (1, 8, 8), 10), ("moons", (2,), 2), ("xor", (2,), 2)):
        spec = build.build_datamodule(make_cfg(tmp_path, f"data={name}")).spec
        assert (spec.input_shape, spec.num_classes) == (shape, classes)


def test_splits_move_to_the_trainers_device_once_and_stay(tmp_path):
    """Device-resident data: the loaders hand out batches already on the trainer's device.

    The 'meta' device stands in for a GPU (this machine has none): only where tensors live is checked.
    """
    from types import SimpleNamespace

    from conftest import make_cfg

    from lightdl import build

    datamodule = build.build_datamodule(make_cfg(tmp_path))
    datamodule.setup()
    cpu_x = datamodule.splits["train"][0]
    xb, _ = next(iter(datamodule.train_dataloader()))  # no trainer: stays where it is
    assert xb.device.type == "cpu" and datamodule.splits["train"][0] is cpu_x
    datamodule.trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("meta")),
        current_epoch=0,
        global_rank=0,
        world_size=1,
    )
    for split, loader in (
        ("train", datamodule.train_dataloader),
        ("val", datamodule.val_dataloader),
    ):
        xb, yb = next(iter(loader()))
        assert xb.device.type == yb.device.type == "meta"
        assert datamodule.splits[split][0].device.type == "meta"  # moved once, kept there
    moved = datamodule.splits["train"][0]
    datamodule.train_dataloader()
    assert datamodule.splits["train"][0] is moved  # a second epoch does not copy again
