"""DeadUnits: the fraction of ReLU-family units that never fire over a whole validation pass."""

from __future__ import annotations

import lightning as L
import torch

from lightdl.callbacks.layer_hooks import RELU_FAMILY, WEIGHT_LAYERS, ForwardHooks, named_layers


class DeadUnits(L.Callback):
    """After each validation pass (not the sanity check) logs `dead_units/<path>` per ReLU-family
    activation module (`dead_units/net.2` is the first ReLU of an MLP) and `dead_units/total`
    over all of them: the fraction of units whose output was never > 0 on any validation example.

    A unit is a feature of a dense layer's output (its last axis) or a channel of a conv layer's
    output (axis 1, all positions together), as set by the Linear or Conv layer that ran last
    before the activation. ReLU family: ReLU, ReLU6, LeakyReLU, PReLU, RReLU, ELU, CELU, SELU,
    GELU, SiLU, Mish; each outputs > 0 exactly where its input is > 0, so "never active" means
    the unit's input was never positive. For ReLU such a unit is dead (no gradient ever reaches
    its weights); for the leaky ones it still learns, slowly, through the negative slope.
    A module called k times in one forward pass counts each call as its own layer (`<path>@k`
    for k >= 1). Activations applied as functions (F.relu) are not seen.

    Cost: hooks exist only during validation batches; each keeps a boolean "ever active" mask per
    unit on the device (no host sync per batch), read once when the pass ends. A net without a
    ReLU-family module is told so once and logs nothing.
    """

    logged_metrics = ("dead_units/total",)

    def __init__(self) -> None:
        self.ever_active: dict[str, torch.Tensor] = {}  # layer -> (units,) bool, this pass
        self.units: dict[str, int] = {}  # layer -> number of units, after a pass
        self._hooks = ForwardHooks()
        self._in_batch = False  # count only the validation batches' forward passes
        self._calls: dict[str, int] = {}  # module path -> calls in this batch's forward
        self._conv_input = False  # the last weight layer to run was a convolution
        self._watched: list | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        told = self._watched == []  # said once already (fit, then test)
        self._watched = list(named_layers(pl_module, lambda m: isinstance(m, RELU_FAMILY)))
        if not self._watched and not told and trainer.is_global_zero:
            print(
                f"callbacks=dead_units: {type(getattr(pl_module, 'net', pl_module)).__name__} "
                "has no ReLU-family activation module; no dead units are reported.",
                flush=True,
            )

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.ever_active = {}
        if trainer.sanity_checking or not self._watched:
            return
        producers = list(named_layers(pl_module, lambda m: isinstance(m, WEIGHT_LAYERS)))
        self._hooks.attach(producers, self._produced)
        self._hooks.attach(self._watched, self._activated)

    def on_validation_batch_start(
        self, trainer, pl_module, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._calls, self._conv_input, self._in_batch = {}, False, True

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._in_batch = False

    def _produced(self, name: str, module, output) -> None:
        self._conv_input = isinstance(module, torch.nn.modules.conv._ConvNd)

    def _activated(self, name: str, module, output) -> None:
        if not self._in_batch or not isinstance(output, torch.Tensor) or output.dim() == 0:
            return
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        layer = name if call == 0 else f"{name}@{call}"
        axis = 1 if self._conv_input and output.dim() >= 3 else output.dim() - 1
        others = tuple(d for d in range(output.dim()) if d != axis)
        fired = output.detach().gt(0).any(dim=others) if others else output.detach().gt(0)
        seen = self.ever_active.get(layer)
        self.ever_active[layer] = fired if seen is None else seen | fired

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._hooks.remove()
        if trainer.sanity_checking or not self.ever_active:
            return
        dead = {layer: (~mask).sum() for layer, mask in self.ever_active.items()}
        self.units = {layer: mask.numel() for layer, mask in self.ever_active.items()}
        logged = {f"dead_units/{layer}": dead[layer] / self.units[layer] for layer in dead}
        logged["dead_units/total"] = torch.stack(list(dead.values())).sum() / sum(
            self.units.values()
        )
        pl_module.log_dict(logged, on_step=False, on_epoch=True, batch_size=1)
        self.ever_active = {}

    def on_validation_end(self, trainer, pl_module) -> None:
        self._hooks.remove()
