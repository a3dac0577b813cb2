"""TextSamples: text drawn from a language model after validation, at several temperatures."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from lightdl.errors import ConfigError
from lightdl.tasks.language_model import check_prime, check_temperature, sample

KEY = "callbacks.text_samples"


class TextSamples(L.Callback):
    """Every `every_n_epochs` epochs, after validation, draws `length` characters continuing
    `prime` at each temperature, prints them, appends them to <run>/samples.txt and logs them as
    text to TensorBoard and W&B when those loggers are on.

    Each temperature's draws use a generator seeded with `seed` afresh every epoch, so the samples
    of successive epochs differ only because the weights did: watching them shows what the model
    has learned (spaces and word lengths first, then common words, then punctuation and layout).
    Only for language-model data (data=chars): other data is refused when training starts.
    """

    def __init__(
        self,
        temperatures: list[float] | tuple[float, ...] = (0.5, 1.0, 1.5),
        length: int = 200,
        prime: str = "The ",
        every_n_epochs: int = 1,
        seed: int = 0,
        filename: str = "samples.txt",
    ) -> None:
        if isinstance(temperatures, int | float):
            temperatures = [temperatures]
        if not temperatures:
            raise ConfigError(f"{KEY}.temperatures must list at least one temperature > 0.")
        self.temperatures = [check_temperature(t, f"{KEY}.temperatures") for t in temperatures]
        for key, value in (("length", length), ("every_n_epochs", every_n_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{KEY}.{key} must be an integer >= 1, got {value!r}.")
        self.length, self.prime, self.every_n_epochs = length, str(prime), every_n_epochs
        self.seed, self.filename = seed, filename
        self.vocab: tuple[str, ...] | None = None
        self.samples: list[dict] = []  # {"epoch", "temperature", "text"} for every draw so far

    def setup(self, trainer, pl_module, stage: str) -> None:
        spec = getattr(trainer.datamodule, "spec", None)
        if spec is None or spec.task != "language_model" or not spec.vocab:
            task = getattr(spec, "task", "unknown")
            raise ConfigError(
                f"callbacks=text_samples draws text from a language model, but this data's task "
                f"is '{task}'; use it with data=chars or leave it out of callbacks."
            )
        if not hasattr(pl_module.net, "step_logits"):
            raise ConfigError(
                f"callbacks=text_samples needs a model that continues a sequence step by step "
                f"(model=lstm, gru or rnn), not {type(pl_module.net).__name__}."
            )
        self.vocab = spec.vocab
        check_prime(self.prime, spec.vocab, f"{KEY}.prime")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if trainer.sanity_checking or (epoch + 1) % self.every_n_epochs:
            return
        drawn = []
        for temperature in self.temperatures:
            generator = torch.Generator().manual_seed(self.seed)
            text = self.prime + sample(
                pl_module.net, self.vocab, self.prime, self.length, temperature, generator
            )
            drawn.append({"epoch": epoch, "temperature": temperature, "text": text})
        self.samples += drawn
        if trainer.is_global_zero:
            self._write(trainer, drawn)

    def _write(self, trainer, drawn: list[dict]) -> None:
        blocks = [
            f"--- epoch {d['epoch']}, temperature {d['temperature']:g} ---\n{d['text']}\n"
            for d in drawn
        ]
        print("\n" + "".join(blocks), flush=True)
        path = Path(trainer.default_root_dir) / self.filename
        with path.open("a", encoding="utf-8") as out:
            out.write("".join(blocks) + "\n")
        for logger in trainer.loggers:
            _log_text(logger, drawn, trainer.global_step)


def _log_text(logger, drawn: list[dict], step: int) -> None:
    """TensorBoard: one text entry per temperature; W&B: a table of this epoch's samples."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if isinstance(logger, TensorBoardLogger):
        for d in drawn:
            # indented lines are a Markdown code block: TensorBoard keeps line breaks and spacing
            body = "\n".join("    " + line for line in d["text"].splitlines())
            logger.experiment.add_text(f"samples/temperature_{d['temperature']:g}", body, step)
    elif type(logger).__name__ == "WandbLogger":
        logger.log_text(
            key="samples",
            columns=["epoch", "temperature", "text"],
            data=[[d["epoch"], d["temperature"], d["text"]] for d in drawn],
            step=step,
        )
