"""Image grids, the zlib/struct PNG writer, and the samples callback on tiny fake generative models."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

import lightning as L
import pytest
import torch
from conftest import make_cfg
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightdl import build
from lightdl.callbacks.samples import Samples
from lightdl.errors import ConfigError
from lightdl.images import SIGNATURE, chunks, encode_png, grid, read_png, write_png

SHAPE = (1, 6, 5)  # tiny (C, H, W) images


def grid_dims(n: int, nrow: int, padding: int, h: int, w: int) -> tuple[int, int]:
    rows, cols = -(-n // nrow), min(nrow, n)
    return rows * (h + padding) + padding, cols * (w + padding) + padding


# ---- grid and PNG ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "nrow", "padding"), [(64, 8, 2), (10, 4, 1), (3, 8, 0), (7, 1, 3)])
def test_grid_shape_and_placement(n, nrow, padding):
    images = torch.rand(n, 3, 6, 5)
    out = grid(images, nrow, padding, pad_value=0.25)
    assert out.shape == (3, *grid_dims(n, nrow, padding, 6, 5))
    # image i sits in row i // nrow, column i % nrow; padding keeps pad_value
    last = n - 1
    top, left = padding + (last // nrow) * (6 + padding), padding + (last % nrow) * (5 + padding)
    assert torch.equal(out[:, top : top + 6, left : left + 5], images[last])
    if padding:
        assert bool((out[:, :padding, :] == 0.25).all())


@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_is_exact_and_chunks_are_valid(tmp_path, channels):
    image = torch.randint(0, 256, (channels, 13, 17), dtype=torch.uint8)
    path = write_png(tmp_path / "a" / "x.png", image)
    assert torch.equal(read_png(path), image)
    data = path.read_bytes()
    assert data[:8] == SIGNATURE
    kinds = [kind for kind, _ in chunks(data)]  # chunks() checks every CRC
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, color = struct.unpack(">IIBB", chunks(data)[0][1][:10])
    assert (w, h, depth, color) == (17, 13, 8, 0 if channels == 1 else 2)
    assert not list(tmp_path.glob("a/.*"))  # no temporary file left behind
    # a flipped byte in the IDAT payload is caught by its CRC
    broken = bytearray(data)
    broken[8 + 25 + 8 + 3] ^= 0xFF
    with pytest.raises(ValueError, match="bad CRC"):
        chunks(bytes(broken))
    if shutil.which("file"):
        said = subprocess.run(["file", str(path)], capture_output=True, text=True).stdout
        kind = "grayscale" if channels == 1 else "RGB"
        assert f"PNG image data, 17 x 13, 8-bit{'/color' if channels == 3 else ''} {kind}" in said


def test_float_images_quantize_to_nearest_byte(tmp_path):
    image = torch.tensor([[[0.0, 0.5, 1.0, 1.7, -0.2, 0.2]]])
    assert read_png(write_png(tmp_path / "f.png", image)).tolist() == [[[0, 128, 255, 255, 0, 51]]]
    assert encode_png(image) == encode_png(image)  # deterministic bytes
    with pytest.raises(ValueError, match="C = 1 or 3"):
        encode_png(torch.rand(2, 4, 4))


# ---- the callback on fake models ------------------------------------------------------------------


class Generator(nn.Module):
    """latent -> (N, *SHAPE) in [0, 1]; optional reconstruct and class conditioning."""

    def __init__(self, latent_dim=4, conditional=False, num_classes=3, reconstructs=False):
        super().__init__()
        self.latent_dim, self.conditional, self.num_classes = latent_dim, conditional, num_classes
        self.decode = nn.Sequential(
            nn.Linear(latent_dim, 16), nn.Dropout(0.5), nn.Linear(16, 30), nn.Sigmoid()
        )
        self.encode = nn.Linear(30, latent_dim)
        self.seen_labels = None
        if reconstructs:
            self.reconstruct = lambda x: self.generate(self.encode(x.flatten(1)))

    def generate(self, z, labels=None):
        self.seen_labels = labels
        return self.decode(z).view(-1, *SHAPE)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(30, 3)


class Fake(L.LightningModule):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, _ = batch
        if hasattr(self.net, "generate"):
            z = torch.randn(len(x), self.net.latent_dim)
            return (self.net.generate(z) - x).square().mean()
        return self.net.fc(x.flatten(1)).square().mean()

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def loader(n=40, batch_size=20):
    g = torch.Generator().manual_seed(1)
    return DataLoader(
        TensorDataset(torch.rand(n, *SHAPE, generator=g), torch.zeros(n)), batch_size=batch_size
    )


def fit(tmp_path, net, callback, epochs=2, logger=False):
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=logger,
        default_root_dir=str(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    module = Fake(net)
    trainer.fit(module, loader(), loader())
    return module, trainer


def test_callback_writes_epoch_grids_and_progression(tmp_path):
    callback = Samples(n=10, nrow=4, padding=1)
    fit(tmp_path, Generator(), callback, epochs=2)
    files = sorted(p.name for p in (tmp_path / "samples").iterdir())
    # epochs 0 and 1 only: the sanity check before training draws nothing
    assert files == ["epoch_000.png", "epoch_001.png", "progression.png"]
    for name in files[:2]:
        assert tuple(read_png(tmp_path / "samples" / name).shape) == (1, *grid_dims(10, 4, 1, 6, 5))
    # progression: one row of nrow images per epoch
    progression = read_png(tmp_path / "samples" / "progression.png")
    assert tuple(progression.shape) == (1, *grid_dims(2 * 4, 4, 1, 6, 5))
    # the progression rows are the first nrow images of each epoch's grid
    first = read_png(tmp_path / "samples" / "epoch_000.png")
    second = read_png(tmp_path / "samples" / "epoch_001.png")
    row = 1 + 6 + 1  # padding + height + padding
    assert torch.equal(progression[:, :row], first[:, :row])
    assert torch.equal(progression[:, row:], second[:, 1:row])
    assert not torch.equal(first, second)  # training changed the weights, hence the samples


def test_fixed_latents_give_identical_bytes_and_modes_are_restored(tmp_path):
    callback = Samples(n=8, nrow=4, every_n_epochs=5)  # fit draws nothing: 1 epoch < 5
    module, trainer = fit(tmp_path, Generator(), callback, epochs=1)
    assert not (tmp_path / "samples").exists()
    module.train()  # dropout on: render must switch it off, then switch training back on
    a, b = callback.render(module), callback.render(module)
    assert module.training and module.net.decode[1].training
    assert encode_png(a["generated"]) == encode_png(b["generated"])
    assert torch.equal(callback.z, torch.randn(8, 4, generator=torch.Generator().manual_seed(0)))
    other = Samples(n=8, nrow=4, seed=1)
    other.setup(trainer, module, "fit")
    assert encode_png(other.render(module)["generated"]) != encode_png(a["generated"])


def test_conditional_rows_are_classes(tmp_path):
    net = Generator(conditional=True, num_classes=3)
    callback = Samples(n=10, nrow=2)
    fit(tmp_path, net, callback, epochs=1)
    # row r (2 images each) is class r % 3
    assert net.seen_labels.tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1]


def test_reconstructions_alternate_input_and_output_rows(tmp_path):
    net = Generator(reconstructs=True)
    callback = Samples(n=4, nrow=4, reconstructions=8, padding=1)
    module, _ = fit(tmp_path, net, callback, epochs=1)
    picture = read_png(tmp_path / "samples" / "epoch_000_reconstructions.png")
    assert tuple(picture.shape) == (1, *grid_dims(16, 4, 1, 6, 5))  # 8 inputs + 8 outputs
    inputs = loader().dataset.tensors[0][:8]
    assert torch.equal(callback.inputs, inputs)  # first validation batch, fixed
    cell = lambda r, c: picture[:, 1 + r * 7 : 7 * (r + 1), 1 + c * 6 : 6 * (c + 1)]  # noqa: E731
    as_bytes = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
    with torch.no_grad():
        outputs = net.eval().reconstruct(inputs)  # the callback draws in eval mode (no dropout)
    assert torch.equal(cell(0, 1), as_bytes(inputs[1]))  # row 0: inputs 0-3
    assert torch.equal(cell(1, 1), as_bytes(outputs[1]))  # row 1: their reconstructions
    assert torch.equal(cell(2, 3), as_bytes(inputs[7]))  # row 2: inputs 4-7
    assert torch.equal(cell(3, 3), as_bytes(outputs[7]))


def test_refuses_a_net_that_draws_nothing(tmp_path):
    with pytest.raises(ConfigError, match="callbacks=samples draws images.*not Classifier"):
        fit(tmp_path, Classifier(), Samples(), epochs=1)


def test_grids_reach_tensorboard(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path), name="tb", version=0)
    fit(tmp_path, Generator(), Samples(n=6, nrow=3), epochs=2, logger=logger)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert set(events.Tags()["images"]) == {"samples/generated", "samples/progression"}
    generated = events.Images("samples/generated")
    assert len(generated) == 2  # one per epoch
    assert (generated[0].height, generated[0].width) == grid_dims(6, 3, 2, 6, 5)


def test_config_option_builds_the_callback(tmp_path):
    cfg = make_cfg(tmp_path, "callbacks=[samples]", "callbacks.samples.nrow=5")
    callback = build.make(cfg.callbacks, "samples")
    assert isinstance(callback, Samples)
    assert (callback.nrow, callback.n, callback.filename_pattern) == (
        5,
        64,
        "samples/epoch_{epoch:03d}.png",
    )
    with pytest.raises(ConfigError, match="filename_pattern may only use the field"):
        Samples(filename_pattern="s/{step}.png")
    with pytest.raises(ConfigError, match=r"callbacks.samples.nrow must be an integer >= 1"):
        Samples(nrow=0)


def test_zlib_stream_is_standard(tmp_path):
    image = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8)
    idat = dict(chunks(encode_png(image)))[b"IDAT"]
    raw = zlib.decompress(idat)
    assert len(raw) == 4 * (1 + 4 * 3) and raw[0] == 0  # filter byte 0 before every scanline


def test_grids_reach_wandb_offline(tmp_path):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(offline=True, save_dir=str(tmp_path))
    try:
        fit(tmp_path, Generator(), Samples(n=6, nrow=3), epochs=2, logger=logger)
        media = sorted(p.name.split("_")[0] for p in tmp_path.rglob("media/images/samples/*.png"))
    finally:
        wandb.finish()
    assert media == ["generated", "generated", "progression"]
