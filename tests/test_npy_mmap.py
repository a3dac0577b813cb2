"""data=npy: .npy arrays train like any in-memory dataset; with data.mmap=true the inputs stay in the
file, batches come through the same path, and resident memory stays well below the file's size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_cfg, run_cli
from sklearn.datasets import load_digits

from lightdl import build
from lightdl.data import arrays
from lightdl.errors import DataError
from lightdl.train import train


def save_digits(folder) -> list[str]:
    digits = load_digits()
    np.save(folder / "x.npy", (digits.images / 16.0)[:, None].astype(np.float32))
    np.save(folder / "y.npy", digits.target)
    return [f"data.train_x={folder / 'x.npy'}", f"data.train_y={folder / 'y.npy'}"]


def npy_overrides(folder, *extra: str) -> list[str]:
    return ["data=npy", *save_digits(folder), "data.test_size=360", "data.val_size=180", *extra]


def test_memory_mapped_inputs_train_exactly_like_inputs_in_memory(tmp_path):
    def run(mmap: bool) -> dict:
        folder = tmp_path / str(mmap)
        folder.mkdir()
        overrides = npy_overrides(folder, f"data.mmap={mmap}", "preprocess=none")
        cfg = make_cfg(folder, *overrides, "trainer.max_epochs=2", "test=true")
        return train(cfg, folder / "run")["metrics"]

    in_memory, mapped = run(False), run(True)
    assert in_memory["test/acc"] > 0.5  # it learned (chance is 0.1)
    for key in ("train/loss", "val/loss", "val/acc", "test/acc"):
        assert mapped[key] == in_memory[key], key


def test_a_mapped_split_is_rows_of_the_file_not_a_tensor(tmp_path):
    cfg = make_cfg(tmp_path, *npy_overrides(tmp_path, "data.mmap=true"))
    datamodule = build.build_datamodule(cfg)
    datamodule.setup()
    x, y = datamodule.splits["train"]
    assert isinstance(x, arrays.MappedRows) and len(x) == len(y) == 1797 - 360 - 180
    xb, _ = next(iter(datamodule.train_dataloader()))
    assert xb.shape == (128, 1, 8, 8)
    assert abs(float(x.fit_sample(0).mean())) > 0.1  # raw pixels; the batches are standardized
    assert abs(float(datamodule.splits["val"][0][:180].mean())) < 0.1


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def write_big(path, rows: int, features: int) -> None:
    """A float32 .npy of rows x features written in chunks (never whole in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, features))
    for start in range(0, rows, 5000):
        stop = min(start + 5000, rows)
        out[start:stop] = np.random.default_rng(start).standard_normal((stop - start, features))
    out.flush()
    del out
    np.save(path.with_name("y.npy"), np.arange(rows) % 10)


def peak_growth(path) -> float:
    """Peak resident-memory growth (MB) over building the DataModule and one epoch of batches."""
    base = rss_mb()
    datamodule = arrays.NpyArrays(
        str(path), str(path.with_name("y.npy")), test_size=1000, val_size=1000, mmap=True
    )
    datamodule.setup()
    peak = rss_mb()
    for _ in datamodule.train_batches():
        peak = max(peak, rss_mb())
    return peak - base


def test_an_epoch_over_a_mapped_file_keeps_resident_memory_well_below_the_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "x.npy"
    write_big(path, rows=50_000, features=1024)  # 195 MiB
    size_mb = path.stat().st_size / 2**20
    assert peak_growth(path) < size_mb / 2
    # Read through the map instead, the same epoch holds most of the file: the bound is real.
    monkeypatch.setattr(arrays._Mapping, "read", lambda self, rows: np.asarray(self.array[rows]))
    assert peak_growth(path) > size_mb * 0.6


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: (d / "x.npy").write_bytes(b"not an array"), "x.npy is not a readable .npy"),
        (lambda d: np.save(d / "x.npy", np.array([{"a": 1}] * 4)), "x.npy is not a readable .npy"),
        (lambda d: np.save(d / "x.npy", np.zeros((5, 3))), "holds 5 examples but"),
        (lambda d: np.save(d / "y.npy", np.array([0, 1, 2, -1])), "non-negative integers"),
        (lambda d: (d / "x.npy").unlink(), "x.npy: no such .npy file"),
    ],
)
def test_bad_npy_files_are_named_in_one_sentence(tmp_path, make, words):
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 1]))
    make(tmp_path)
    with pytest.raises(DataError, match=words):
        arrays.NpyArrays(str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), test_size=1)


def test_the_cli_trains_on_a_mapped_file_and_answers_a_missing_one(tmp_path):
    done = run_cli(
        *npy_overrides(tmp_path, "data.mmap=true"),
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "status: completed" in done.stdout
    missing = run_cli("data=npy", "data.train_x=nowhere.npy", "data.train_y=y.npy", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        "lightdl: error: nowhere.npy: no such .npy file."
    )


def test_fortran_ordered_files_are_refused_when_mapped(tmp_path):
    np.save(tmp_path / "x.npy", np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3)))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 1]))
    paths = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    with pytest.raises(DataError, match="Fortran"):
        arrays.NpyArrays(*paths, test_size=1, mmap=True)
    in_memory = arrays.NpyArrays(*paths, test_size=1, mmap=False)  # loaded whole: any order is fine
    assert in_memory.arrays["train"][0][1].tolist() == [3.0, 4.0, 5.0]


def test_rows_come_back_whole_when_the_os_returns_short_reads(tmp_path, monkeypatch):
    """One read returns at most ~2 GiB on Linux; the reader keeps reading until the rows are in."""
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    real = arrays.os.preadv
    monkeypatch.setattr(arrays.os, "preadv", lambda fd, bufs, pos: real(fd, [bufs[0][:6]], pos))
    data = arrays.NpyArrays(
        str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), test_size=1, mmap=True
    )
    rows = data._tensor(data.arrays["train"][0])
    assert rows.index_select(0, torch.tensor([7, 2, 3])).tolist() == x[[7, 2, 3]].tolist()
    assert rows[9].tolist() == x[9].tolist()


def test_an_autoencoder_trains_on_mapped_inputs(tmp_path):
    cfg = make_cfg(tmp_path, *npy_overrides(tmp_path, "data.mmap=true"), "model=autoencoder")
    cfg.preprocess = None  # pixels in [0, 1]: the binary cross-entropy reconstruction needs them
    assert train(cfg, tmp_path / "run")["status"] == "completed"
