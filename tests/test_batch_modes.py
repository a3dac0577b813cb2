"""Batch modes and label noise: full-batch GD, pure SGD, noisy training labels, lr scaling."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from conftest import make_cfg

from lightdl import build
from lightdl.data.batches import TensorBatches
from lightdl.errors import ConfigError
from lightdl.train import train
from lightdl.validate import validate

# XOR with 60 points: 20 test, 10 validation, 30 training examples
TINY_XOR = ["data=xor", "data.n_samples=60", "data.test_size=20", "data.val_size=10"]


class BatchSizes(L.Callback):
    """Records the size of every training batch."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.sizes.append(len(batch[0]))


def fit(tmp_path, *overrides: str, epochs: int = 1):
    """Fit the composed model and data with a bare Trainer; returns (trainer, datamodule, sizes)."""
    cfg = make_cfg(tmp_path, *overrides)
    validate(cfg)
    datamodule = build.build_datamodule(cfg)
    net = build.build_net(cfg, datamodule.spec, [])
    task = build.build_task(cfg, net, datamodule, [])
    recorder = BatchSizes()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[recorder],
    )
    trainer.fit(task, datamodule=datamodule)
    return trainer, datamodule, recorder.sizes


def test_full_batch_is_one_step_per_epoch_over_the_whole_training_split(tmp_path):
    trainer, dm, sizes = fit(tmp_path, *TINY_XOR, "data.batch_size=full", epochs=3)
    n_train = len(dm.splits["train"][0])
    assert n_train == 30
    assert trainer.global_step == 3 and sizes == [n_train] * 3
    (x, y), *rest = list(dm.train_dataloader())
    assert not rest
    assert x.data_ptr() == dm.splits["train"][0].data_ptr()  # the split itself, no copy
    assert torch.equal(y, dm.splits["train"][1])


def test_full_batch_through_the_real_training_run(tmp_path):
    result = train(
        make_cfg(tmp_path, "data.batch_size=full", "trainer.max_epochs=2", "callbacks=[nan_guard]"),
        tmp_path / "run",
    )
    assert result["status"] == "completed" and result["global_steps"] == result["epochs"] == 2


def test_batch_size_one_is_pure_sgd_one_step_per_example(tmp_path):
    trainer, dm, sizes = fit(tmp_path, *TINY_XOR, "data.batch_size=1")
    assert trainer.global_step == len(dm.splits["train"][0]) == 30
    assert sizes == [1] * 30


def test_mini_batches_take_ceil_n_over_b_steps(tmp_path):
    trainer, _, sizes = fit(tmp_path, *TINY_XOR, "data.batch_size=8", epochs=2)
    assert trainer.global_step == 2 * math.ceil(30 / 8)
    assert sizes == [8, 8, 8, 6] * 2


def test_one_batch_covering_the_data_is_the_tensors_themselves():
    x, y = torch.randn(10, 3), torch.arange(10)
    for batch_size in (10, 64):
        batches = list(TensorBatches(x, y, batch_size, shuffle=True, seed=3))
        (bx, by), *rest = batches
        assert not rest and torch.equal(bx, x) and torch.equal(by, y)  # in order: not shuffled
        assert bx.data_ptr() == x.data_ptr()  # a view of the data, no copy
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(x, y, 0)


def noisy_and_clean(tmp_path, noise: float, *overrides: str):
    clean = build.build_datamodule(make_cfg(tmp_path, *overrides))
    noisy = build.build_datamodule(make_cfg(tmp_path, f"data.label_noise={noise}", *overrides))
    return noisy, clean


@pytest.mark.parametrize("noise", [0.2, 0.5])
def test_label_noise_changes_that_fraction_of_training_labels_only(tmp_path, noise):
    noisy, clean = noisy_and_clean(tmp_path, noise)
    (x, y), (x_clean, y_clean) = noisy.splits["train"], clean.splits["train"]
    assert torch.equal(x, x_clean)  # same examples, only labels differ
    changed = y != y_clean
    assert abs(changed.float().mean().item() - noise) <= 1 / len(y)
    assert torch.equal(changed, noisy.noisy_mask)  # every replaced label is a different class
    assert torch.equal(noisy.clean_train_labels, y_clean)
    # the new classes are spread over all the other classes
    shift = (y[changed] - y_clean[changed]) % noisy.num_classes
    assert set(shift.tolist()) == set(range(1, noisy.num_classes))
    for split in ("val", "test"):
        assert torch.equal(noisy.splits[split][1], clean.splits[split][1])
        assert torch.equal(noisy.splits[split][0], clean.splits[split][0])


def test_label_noise_is_reproducible_and_follows_split_seed(tmp_path):
    first, _ = noisy_and_clean(tmp_path, 0.3)
    again, _ = noisy_and_clean(tmp_path, 0.3)
    assert torch.equal(first.splits["train"][1], again.splits["train"][1])
    other = build.build_datamodule(make_cfg(tmp_path, "data.label_noise=0.3", "data.split_seed=5"))
    assert not torch.equal(first.noisy_mask, other.noisy_mask)


def test_no_label_noise_by_default(tmp_path):
    dm = build.build_datamodule(make_cfg(tmp_path))
    assert dm.label_noise == 0.0 and dm.noisy_mask is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.batch_size=64"], 1.0),  # off by default
        (["data.batch_size=64", "data.scale_lr_with_batch=true"], 64 / 128),
        (["data.batch_size=256", "data.scale_lr_with_batch=true"], 256 / 128),
        (["data.batch_size=32", "data.scale_lr_with_batch=true", "data.lr_reference_batch=8"], 4.0),
        (["data.batch_size=full"], 1.0),
        (["data.batch_size=full", "data.scale_lr_with_batch=true"], "n_train/128"),
    ],
)
def test_lr_scale_is_train_batch_over_reference_when_on(tmp_path, overrides, expected):
    cfg = make_cfg(tmp_path, *overrides)
    validate(cfg)
    dm = build.build_datamodule(cfg)
    if expected == "n_train/128":
        expected = len(dm.splits["train"][0]) / 128
        assert expected > 5  # digits' full training split, not the configured number
    assert dm.lr_scale == pytest.approx(expected)


def test_lr_scale_uses_the_effective_batch_when_it_exceeds_the_split(tmp_path):
    dm = build.build_datamodule(
        make_cfg(tmp_path, *TINY_XOR, "data.batch_size=512", "data.scale_lr_with_batch=true")
    )
    assert dm.train_batch_size == 30 and dm.lr_scale == pytest.approx(30 / 128)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size must be an integer >= 1 or 'full', got 0."),
        ("data.batch_size=half", "data.batch_size must be an integer >= 1 or 'full', got 'half'."),
        ("data.label_noise=1.0", "data.label_noise must be a fraction in [0, 1), got 1.0."),
        ("data.label_noise=-0.1", "data.label_noise must be a fraction in [0, 1)"),
        ("data.lr_reference_batch=0", "data.lr_reference_batch must be an integer >= 1, got 0."),
        ("data.scale_lr_with_batch=maybe", "data.scale_lr_with_batch must be true or false"),
    ],
)
def test_bad_batch_settings_are_one_sentence(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(tmp_path, override))
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("name", ["digits", "fashion_mnist", "mnist", "moons", "xor"])
def test_every_dataset_takes_the_batch_keys_on_the_command_line(tmp_path, name):
    cfg = make_cfg(
        tmp_path,
        f"data={name}",
        "data.batch_size=full",
        "data.label_noise=0.2",
        "data.scale_lr_with_batch=true",
        "data.lr_reference_batch=64",
    )
    validate(cfg)
    assert cfg.data.label_noise == 0.2 and cfg.data.lr_reference_batch == 64


@pytest.mark.parametrize(
    ("overrides", "factor"),
    [
        (["data.batch_size=64"], 1.0),  # scaling off
        (["data.batch_size=64", "data.scale_lr_with_batch=true"], 0.5),
        (["data.batch_size=full", "data.scale_lr_with_batch=true", "data.max_lr_scale=4"], 4.0),
    ],
)
def test_the_optimizer_trains_with_the_scaled_lr(tmp_path, overrides, factor):
    trainer, _, _ = fit(tmp_path, "data=digits", "optimizer=sgd", "optimizer.lr=0.1", *overrides)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * factor)


def test_a_trailing_batch_of_one_joins_the_previous_batch():
    x, y = torch.randn(21, 3), torch.arange(21)
    for shuffle in (False, True):
        batches = TensorBatches(x, y, batch_size=4, shuffle=shuffle)
        sizes = [len(b[1]) for b in batches]
        assert sizes == [4, 4, 4, 4, 5] and len(batches) == 5
        assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(21))
    assert [len(b[1]) for b in TensorBatches(x, y, batch_size=1)] == [1] * 21


def test_batchnorm_trains_when_the_split_leaves_one_example_over(tmp_path):
    cfg = make_cfg(tmp_path, "regularizer=batchnorm", "data.batch_size=8")  # 1257 = 157 * 8 + 1
    assert train(cfg, tmp_path / "run")["status"] == "completed"
