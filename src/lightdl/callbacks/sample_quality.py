"""SampleQuality: numbers that say whether a generator's samples are any good, scored by a judge."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from lightdl.errors import ConfigError
from lightdl.judge import KEY, ensure_judge, load_judge
from lightdl.paths import chosen

CHUNK = 500  # latents per generate/judge forward pass, to bound memory for large n


class SampleQuality(L.Callback):
    """Every `every_n_epochs` validations (not the sanity check) draws `n` images from
    `net.generate(z, labels)` with latents fixed for the run (seeded by `seed`; for a
    `conditional` net the labels cycle through the classes, so each class gets n / K of them)
    and lets a classifier, the judge, say which class each image shows. It logs

    - val/sample_class_entropy (every generator): the entropy, in nats, of the histogram of the
      judge's predicted classes. ln(K) (2.303 for 10 classes) when all classes are drawn
      equally often, 0 when every image is judged the same class: mode collapse shows as a drop.
    - val/sample_acc (conditional nets only): the fraction of images judged to be the class they
      were asked for. It cannot exceed what the judge scores on real images by much.

    The judge is `judge` (an earlier lightdl classification run or its checkpoint, trained with
    preprocess=none), or else a `judge_model` trained for `judge_epochs` on the data option
    `data` (null: this run's), limited to the datamodule's `classes` when it has them, in a
    separate process and cached under `cache_dir` for later runs.
    It must tell apart exactly the data's classes from inputs of the data's shape; a net without
    `generate` is refused too, both when training starts. Both nets run in eval mode under
    no_grad on the module's device (previous modes restored), only at validation end.
    """

    # what it may log, so `monitor=val/sample_acc` (conditional nets) passes the check at start
    logged_metrics = ("val/sample_class_entropy", "val/sample_acc")

    def __init__(
        self,
        judge: str | None = None,
        cache_dir: str = "outputs/judges",
        judge_model: str = "cnn",
        judge_epochs: int = 2,
        data: str | None = None,
        n: int = 1000,
        every_n_epochs: int = 1,
        seed: int = 0,
    ) -> None:
        for key, value in (
            ("n", n),
            ("every_n_epochs", every_n_epochs),
            ("judge_epochs", judge_epochs),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{KEY}.{key} must be an integer >= 1, got {value!r}.")
        self.judge, self.cache_dir, self.data = judge, cache_dir, data
        self.judge_model, self.judge_epochs = judge_model, judge_epochs
        self.n, self.every_n_epochs, self.seed = n, every_n_epochs, seed
        self.judge_net: torch.nn.Module | None = None  # not a submodule: never in checkpoints
        self.z: torch.Tensor | None = None  # (n, latent_dim) on the CPU, fixed for the run
        self.labels: torch.Tensor | None = None  # (n,) requested classes, conditional nets only
        self.num_classes, self.input_shape = 0, ()

    def setup(self, trainer, pl_module, stage: str) -> None:
        net = getattr(pl_module, "net", pl_module)
        if not callable(getattr(net, "generate", None)):
            raise ConfigError(
                f"callbacks=sample_quality scores images drawn by a generative model (one with "
                f"generate: gan, dcgan, cgan, vae), not {type(net).__name__}; leave it out of "
                "callbacks."
            )
        latent_dim = getattr(net, "latent_dim", None)
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ConfigError(
                f"callbacks=sample_quality needs {type(net).__name__}.latent_dim to be an integer "
                f">= 1 to draw latents, got {latent_dim!r}."
            )
        spec = _spec(net, trainer)
        if self.judge_net is None:
            data = self.data or chosen("data")
            source = self.judge
            if source is None:
                if not data:
                    raise ConfigError(
                        f"{KEY}.data must name the data option to train a judge on (e.g. digits) "
                        "when not run by the lightdl command, or set judge."
                    )
                classes = getattr(getattr(trainer, "datamodule", None), "classes", None)
                source = ensure_judge(
                    data, self.judge_model, self.judge_epochs, self.cache_dir, classes
                )
            else:
                print(f"sample_quality: judging with {Path(source).expanduser()}", flush=True)
            self.judge_net = load_judge(source, spec, data)
        if self.z is None:
            self.num_classes, self.input_shape = spec.num_classes, tuple(spec.input_shape)
            self.z = torch.randn(
                self.n, latent_dim, generator=torch.Generator().manual_seed(self.seed)
            )
            if getattr(net, "conditional", False):
                self.labels = torch.arange(self.n) % spec.num_classes

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        pl_module.log_dict(self.measure(pl_module), on_step=False, on_epoch=True, batch_size=1)

    def measure(self, pl_module) -> dict[str, torch.Tensor]:
        """val/sample_class_entropy (nats) and, for conditional nets, val/sample_acc, as device
        tensors (no host sync here)."""
        net, device = getattr(pl_module, "net", pl_module), pl_module.device
        judge = self.judge_net.to(device).eval()
        was_training = pl_module.training
        pl_module.eval()
        predicted = []
        try:
            with torch.no_grad():
                for start in range(0, self.n, CHUNK):
                    z = self.z[start : start + CHUNK].to(device)
                    if self.labels is None:
                        images = net.generate(z)
                    else:
                        images = net.generate(z, self.labels[start : start + CHUNK].to(device))
                    images = images.float().clamp(0, 1).reshape(len(z), *self.input_shape)
                    predicted.append(judge(images).argmax(-1))
        finally:
            pl_module.train(was_training)
        predicted = torch.cat(predicted)
        # a histogram by scatter_add_: torch.bincount would sync with the host (it reads the max)
        counts = torch.zeros(self.num_classes, device=device)
        counts.scatter_add_(0, predicted, torch.ones_like(predicted, dtype=counts.dtype))
        share = counts / self.n
        found = {"val/sample_class_entropy": -torch.special.xlogy(share, share).sum()}
        if self.labels is not None:
            found["val/sample_acc"] = (predicted == self.labels.to(device)).float().mean()
        return found


def _spec(net, trainer):
    """The data's spec: the datamodule's, else the net's own."""
    spec = getattr(getattr(trainer, "datamodule", None), "spec", None) or getattr(net, "spec", None)
    if spec is None:
        raise ConfigError(
            f"callbacks=sample_quality needs the data's spec (input shape and classes) from the "
            f"datamodule or {type(net).__name__}.spec."
        )
    return spec
