"""Samples: image grids from a generative model after each validation, and one progression picture."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from lightdl.errors import ConfigError
from lightdl.images import grid, write_png

KEY = "callbacks.samples"


class Samples(L.Callback):
    """Every `every_n_epochs` validations (not the sanity check) writes, in the run directory:

    - `filename_pattern` (epoch = the 0-based epoch): a grid of `n` images, `nrow` per row, from
      `net.generate(z, labels)` for the model's `generate` (GAN, DCGAN, VAE decoder). The latents
      `z` are drawn once from a CPU generator seeded with `seed`, so every epoch draws from the
      same points and grids differ only because the weights did. For a `conditional` net row r
      is class r % num_classes, so each row should show one class.
    - the same name with `_reconstructions` for a net with `reconstruct` (autoencoder, VAE): the
      first `reconstructions` images of the first validation batch, fixed for the whole run, in
      alternating rows: inputs, then their reconstructions beneath them.
    - at the end of fit, `progression.png` beside them: one row per sampled epoch (its first
      `nrow` generated images; for a net that only reconstructs, the inputs on top and each
      epoch's reconstructions of them below), top to bottom in time.

    Each grid is also logged with add_image to TensorBoard and as a wandb.Image of the written
    PNG to W&B (wandb.Image uses Pillow, which tensorboard installs). Pixels are shown as [0, 1]
    (clamped), so image presets use preprocess=none. The cost falls only at validation end: one
    forward pass of n latents (and of the inputs) under no_grad in eval mode, the module's
    previous mode restored afterwards. A net with neither generate nor reconstruct is refused
    when training starts.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n: int = 64,
        nrow: int = 8,
        seed: int = 0,
        filename_pattern: str = "samples/epoch_{epoch:03d}.png",
        reconstructions: int = 32,
        padding: int = 2,
    ) -> None:
        for key, value, low in (
            ("every_n_epochs", every_n_epochs, 1),
            ("n", n, 1),
            ("nrow", nrow, 1),
            ("reconstructions", reconstructions, 1),
            ("padding", padding, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{KEY}.{key} must be an integer >= {low}, got {value!r}.")
        try:
            name = Path(str(filename_pattern).format(epoch=0))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{KEY}.filename_pattern may only use the field {{epoch}}, got "
                f"{filename_pattern!r}."
            ) from exc
        if name.suffix != ".png":
            raise ConfigError(f"{KEY}.filename_pattern must end in .png, got {filename_pattern!r}.")
        self.every_n_epochs, self.n, self.nrow, self.seed = every_n_epochs, n, nrow, seed
        self.filename_pattern, self.reconstructions, self.padding = (
            str(filename_pattern),
            reconstructions,
            padding,
        )
        self.z: torch.Tensor | None = None  # (n, latent_dim) on the CPU, fixed for the run
        self.labels: torch.Tensor | None = None  # (n,) class of each latent for conditional nets
        self.inputs: torch.Tensor | None = None  # fixed validation inputs for reconstructions
        self.rows: list[tuple[int, torch.Tensor]] = []  # (epoch, first nrow images) for progression
        self.written: list[Path] = []
        self.can_generate = self.can_reconstruct = False  # set from the net at setup

    # ---- setup: what the net can draw ---------------------------------------------------------

    def setup(self, trainer, pl_module, stage: str) -> None:
        net = _net(pl_module)
        self.can_generate = callable(getattr(net, "generate", None))
        self.can_reconstruct = callable(getattr(net, "reconstruct", None))
        if not (self.can_generate or self.can_reconstruct):
            raise ConfigError(
                f"callbacks=samples draws images from a generative model (one with generate or "
                f"reconstruct: autoencoder, vae, gan, dcgan, cgan, sgan), not "
                f"{type(net).__name__}; leave it out of callbacks."
            )
        if self.can_generate and self.z is None:
            latent_dim = getattr(net, "latent_dim", None)
            if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
                raise ConfigError(
                    f"callbacks=samples needs {type(net).__name__}.latent_dim to be an integer "
                    f">= 1 to draw latents, got {latent_dim!r}."
                )
            generator = torch.Generator().manual_seed(self.seed)
            self.z = torch.randn(self.n, latent_dim, generator=generator)
            if getattr(net, "conditional", False):
                classes = _num_classes(net, trainer)
                self.labels = (torch.arange(self.n) // self.nrow) % classes

    # ---- hooks ----------------------------------------------------------------------------------

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self.can_reconstruct and self.inputs is None and batch_idx == 0 and not dataloader_idx:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            self.inputs = x[: self.reconstructions].detach().clone()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if trainer.sanity_checking or (epoch + 1) % self.every_n_epochs:
            return
        drawn = self.render(pl_module)
        if "generated" in drawn:
            self.rows.append((epoch, drawn["generated_images"][: self.nrow]))
        elif "reconstructions" in drawn:
            self.rows.append((epoch, drawn["reconstructed_images"][: self.nrow]))
        if not trainer.is_global_zero:
            return
        base = Path(trainer.default_root_dir) / self.filename_pattern.format(epoch=epoch)
        for name in ("generated", "reconstructions"):
            if name in drawn:
                path = base if name == "generated" else base.with_stem(f"{base.stem}_{name}")
                self._save(trainer, name, drawn[name], path)

    def on_fit_end(self, trainer, pl_module) -> None:
        if not self.rows or not trainer.is_global_zero:
            return
        rows = [images for _, images in self.rows]
        if not self.can_generate and self.inputs is not None:  # reconstruction only: inputs on top
            rows.insert(0, _as_images(self.inputs[: self.nrow]))
        stacked = grid(torch.cat(rows), self.nrow, self.padding)
        folder = (Path(trainer.default_root_dir) / self.filename_pattern.format(epoch=0)).parent
        self._save(trainer, "progression", stacked, folder / "progression.png")

    # ---- drawing --------------------------------------------------------------------------------

    def render(self, pl_module) -> dict[str, torch.Tensor]:
        """The grids (C, H', W') on the CPU, keyed "generated" and/or "reconstructions", plus the
        images they tile ("generated_images", "reconstructed_images"); eval mode, no gradients."""
        net, device = _net(pl_module), pl_module.device
        was_training = pl_module.training
        pl_module.eval()
        drawn: dict[str, torch.Tensor] = {}
        try:
            with torch.no_grad():
                if self.can_generate and self.z is not None:
                    z = self.z.to(device)
                    if self.labels is None:
                        images = net.generate(z)
                    else:
                        images = net.generate(z, self.labels.to(device))
                    images = _as_images(images)
                    drawn["generated_images"] = images
                    drawn["generated"] = grid(images, self.nrow, self.padding)
                if self.can_reconstruct and self.inputs is not None:
                    x = self.inputs.to(device)
                    inputs = _as_images(x)
                    outputs = _as_images(net.reconstruct(x).reshape(x.shape))
                    pairs = [
                        part
                        for i in range(0, len(inputs), self.nrow)
                        for part in (inputs[i : i + self.nrow], outputs[i : i + self.nrow])
                    ]
                    drawn["reconstructed_images"] = outputs
                    drawn["reconstructions"] = grid(torch.cat(pairs), self.nrow, self.padding)
        finally:
            pl_module.train(was_training)
        return drawn

    def _save(self, trainer, name: str, image: torch.Tensor, path: Path) -> None:
        write_png(path, image)
        self.written.append(path)
        for logger in trainer.loggers:
            _log_image(logger, f"samples/{name}", image, path, trainer.global_step)


def _net(pl_module):
    return getattr(pl_module, "net", pl_module)


def _num_classes(net, trainer) -> int:
    """Classes for conditional rows: the net's own count, its spec's, or the data's."""
    data = getattr(trainer, "datamodule", None)
    for source in (net, getattr(net, "spec", None), getattr(data, "spec", None)):
        count = getattr(source, "num_classes", None)
        if isinstance(count, int) and count >= 1:
            return count
    raise ConfigError(
        f"callbacks=samples needs the number of classes of conditional {type(net).__name__} "
        "(net.num_classes or the data's spec)."
    )


def _as_images(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float on the CPU in [0, 1]; (N, H, W) gains a channel axis."""
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise ValueError(f"samples need (N, C, H, W) images, got shape {tuple(images.shape)}")
    return images.clamp(0, 1)


def _log_image(logger, tag: str, image: torch.Tensor, path: Path, step: int) -> None:
    """TensorBoard: add_image of the (C, H, W) grid; W&B: a wandb.Image of the written PNG."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, image, step)
    elif type(logger).__name__ == "WandbLogger":
        logger.log_image(key=tag, images=[str(path)], step=step)
