"""trainer=gpu and trainer=fast: the GPU check, lightdl's own trainer keys, and the bf16 fall back.

Lightning's Trainer takes every key of `cfg.trainer` as an argument and refuses unknown ones, so
lightdl's own keys are removed here before the Trainer is built: the speed keys (`compile`,
`channels_last`) become a callback (lightdl.callbacks.speed.Speed) that applies them to the task's
network; `steps_per_call` is read by build (the DataModule's chunks, the task's stepping).
bf16 precision is kept only where the hardware computes in bf16: on a CPU without AVX512-BF16 or
AMX it is emulated (measured 6-8x slower than 32-bit on this 2-core AVX2 machine), so training
falls back to 32-true and says so in one log line.

No torch import at module level: `check_accelerator` runs in `validate`, before torch loads.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightdl.errors import ConfigError
from lightdl.paths import chosen

log = logging.getLogger("lightdl")

SPEED_KEYS = ("compile", "channels_last")  # trainer.<key>: lightdl's, not Lightning's
OWN_KEYS = (*SPEED_KEYS, "steps_per_call")  # steps_per_call: read by build.steps_per_call
GPU_NAMES = ("gpu", "cuda")


def check_accelerator(cfg: DictConfig) -> None:
    """trainer.accelerator=gpu (trainer=gpu) without a visible CUDA GPU is refused in one sentence.

    Lightning would fail later with a long message; torch is imported only when a GPU is asked for.
    """
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default=None)
    if accelerator not in GPU_NAMES:
        return
    import torch

    if torch.cuda.is_available():
        return
    name = "trainer=gpu" if chosen("trainer") == "gpu" else f"trainer.accelerator={accelerator}"
    raise ConfigError(
        f"{name} needs a CUDA GPU; none is visible (torch.cuda.is_available() is False); "
        "use trainer=default."
    )


def _on_cpu(accelerator: str) -> bool:
    import torch

    if accelerator == "cpu":
        return True
    mps = getattr(torch.backends, "mps", None)
    return accelerator == "auto" and not (
        torch.cuda.is_available() or (mps is not None and mps.is_available())
    )


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX); elsewhere it is emulated."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _precision(settings: dict[str, Any]) -> str | int | None:
    """trainer.precision, lowered to 32-true where bf16 would be emulated (one log line)."""
    precision = settings.get("precision")
    if not str(precision).startswith("bf16"):
        return precision
    accelerator = str(settings.get("accelerator", "auto"))
    if _on_cpu(accelerator):
        if cpu_has_bf16():
            return precision
        where = (
            "this CPU has no native bf16 (AVX512-BF16 or AMX) and emulates it, several times slower"
        )
    else:
        import torch

        if accelerator not in (*GPU_NAMES, "auto") or not torch.cuda.is_available():
            return precision
        if torch.cuda.is_bf16_supported():
            return precision
        where = "this GPU has no bf16 support"
    log.info("trainer.precision=%s: %s; training in 32-true.", precision, where)
    return "32-true"


def lightning_trainer(cfg: DictConfig) -> tuple[DictConfig, list]:
    """({"trainer": node} for build.make, [Speed callback]) from `cfg.trainer`.

    The node is `cfg.trainer` without lightdl's OWN_KEYS and with the precision the hardware
    supports; the callback list is empty when neither speed key is on.
    """
    settings = OmegaConf.to_container(cfg.trainer, resolve=True)
    own = {key: settings.pop(key, None) for key in OWN_KEYS}
    speed = {key: bool(own[key]) for key in SPEED_KEYS}  # true/false: validate's rules
    if "precision" in settings:
        settings["precision"] = _precision(settings)
    callbacks = []
    if any(speed.values()):
        from lightdl.callbacks.speed import Speed

        callbacks.append(Speed(**speed))
    return OmegaConf.create({"trainer": settings}), callbacks
