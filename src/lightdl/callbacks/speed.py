"""Speed: trainer.compile (torch.compile) and trainer.channels_last (NHWC) applied to the task's net.

Both keep the network itself unchanged in what it saves: compilation replaces only the instance's
`forward` (the module, its parameters and its state_dict keys stay those of the plain network, with
no `_orig_mod.` prefix), and channels_last changes only the memory layout of 4-D weights. So a
checkpoint written under trainer=fast loads into an uncompiled network, in eval mode or anywhere.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import nn

log = logging.getLogger("lightdl")


class CompiledForward:
    """A network's `forward` compiled with torch.compile, and the eager one to fall back on.

    torch.compile is lazy: it traces and builds kernels at the first call (and again for new input
    shapes or train/eval mode). If that fails (no C++ compiler, an unsupported op, a platform
    torch.compile does not support), the call is repeated eagerly; if the eager call succeeds, the
    failure was the compiler's, so one warning is logged and the network runs eagerly from then on.
    An error the eager forward raises too is the model's and propagates unchanged.
    """

    def __init__(self, eager, compiled, sink: list[str] | None = None) -> None:
        self.eager = eager
        self.compiled = compiled
        self.sink = sink  # where the fall-back warning is also kept (Speed.warnings: summary.json)

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: train eagerly instead
            out = self.eager(*args, **kwargs)
            self.compiled = None
            warn_eager(exc, self.sink)
            return out


def warn_eager(exc: BaseException, sink: list[str] | None = None) -> None:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    message = (
        f"trainer.compile: torch.compile failed ({type(exc).__name__}: {first}); training eagerly."
    )
    log.warning(message)
    if sink is not None:
        sink.append(message)


def compile_forward(net: nn.Module, sink: list[str] | None = None) -> bool:
    """Replace net.forward by a CompiledForward; False (one warning) when torch.compile refuses.
    A fall-back warning is also appended to `sink` when one is given."""
    eager = net.forward
    try:
        compiled = torch.compile(eager)
    except Exception as exc:  # noqa: BLE001 - e.g. an unsupported Python or platform
        warn_eager(exc, sink)
        return False
    net.forward = CompiledForward(eager, compiled, sink)
    return True


def channels_last_inputs(module: nn.Module, args: tuple):
    """Forward pre-hook: a 4-D floating-point input (N, C, H, W) is laid out channels-last."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        if args[0].is_floating_point():
            return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return None


def to_channels_last(net: nn.Module) -> bool:
    """2-D convolutional networks only: weights and input batches in NHWC, which cuDNN's (and
    oneDNN's) fastest convolution kernels use. Other networks would only pay a copy per batch."""
    if not any(isinstance(m, nn.Conv2d) for m in net.modules()):
        return False
    net.to(memory_format=torch.channels_last)
    net.register_forward_pre_hook(channels_last_inputs)
    return True


class Speed(L.Callback):
    """Applies trainer.channels_last and trainer.compile to `pl_module.net`, once per network.

    At setup, before Lightning moves the model to its device (a move keeps the memory layout) and
    builds the optimizer. Compilation is for fitting only: a test or predict run of a saved model
    (mode=eval) would spend longer compiling than evaluating.
    """

    def __init__(self, compile: bool = False, channels_last: bool = False) -> None:
        self.compile = compile
        self.channels_last = channels_last
        self.warnings: list[str] = []  # a compile fall-back, for summary.json

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        net = getattr(pl_module, "net", None)
        if not isinstance(net, nn.Module):
            return
        done = net.__dict__.setdefault("_lightdl_speed", set())
        if self.channels_last and "channels_last" not in done:
            to_channels_last(net)
            done.add("channels_last")
        if self.compile and stage == "fit" and "compile" not in done:
            compile_forward(net, self.warnings)
            done.add("compile")
