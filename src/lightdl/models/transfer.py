"""Transfer learning: the network of an earlier lightdl run, its output layer replaced, frozen or not."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError


def run_files(source: str, key: str = "model.source") -> tuple[Path, Path]:
    """(checkpoint, the run's .hydra/config.yaml) for a run directory or a checkpoint file;
    `key` is the config key that named `source`, for the error sentence."""
    path = Path(source).expanduser()
    if path.is_dir():
        run_dir = path
        checkpoint = next(
            (
                c
                for c in (path / "checkpoints" / "best.ckpt", path / "checkpoints" / "last.ckpt")
                if c.is_file()
            ),
            None,
        )
    else:
        run_dir, checkpoint = path.parent.parent, path if path.is_file() else None
    config = run_dir / ".hydra" / "config.yaml"
    if checkpoint is None or not config.is_file():
        raise ConfigError(
            f"{key}={source}: expected an earlier lightdl run directory (with "
            "checkpoints/best.ckpt or last.ckpt and .hydra/config.yaml) or one of its checkpoints."
        )
    return checkpoint, config


def load_run_net(source: str, spec: DataSpec, key: str = "model.source") -> nn.Module:
    """Rebuild an earlier run's network from its own config for inputs of `spec`'s shape, with
    the run's own class count, and load its trained weights. `key` names `source` in errors."""
    from hydra.utils import get_object

    from lightdl import build

    checkpoint, config = run_files(source, key)
    cfg = OmegaConf.load(config)
    classes = cfg.data.get("classes")
    num_classes = len(classes) if classes else get_object(cfg.data._target_).num_classes
    net = build.build_net(
        cfg, DataSpec(spec.input_shape, num_classes, spec.kind), build.build_regularizers(cfg)
    )
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # a corrupt or foreign file: one sentence, not a traceback
        raise ConfigError(f"{key}: cannot read the checkpoint {checkpoint}: {exc}") from exc
    weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(
            f"{key}: the checkpoint {checkpoint} does not fit the network its run's config "
            f"builds for input {spec.input_shape}: {str(exc).splitlines()[0]}"
        ) from exc
    return net


def _last_linear(net: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """(parent, attribute name, layer) of the last nn.Linear: the output layer."""
    found = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            found = name
    if found is None:
        raise ConfigError("model=transfer needs a source network that ends in a linear layer.")
    parent_name, _, attribute = found.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    return parent, attribute, getattr(parent, attribute)


def _all_but(module: nn.Module, head: nn.Module) -> list[nn.Module]:
    """Modules that together hold every parameter of `module` except the head's.

    Parameters sitting directly on a container of the head are frozen here (they have no module
    of their own to list).
    """
    parts: list[nn.Module] = []
    for parameter in module.parameters(recurse=False):
        parameter.requires_grad_(False)
    for child in module.children():
        if child is head:
            continue
        if any(m is head for m in child.modules()):
            parts += _all_but(child, head)
        else:
            parts.append(child)
    return parts


def _layers(module: nn.Module) -> list[nn.Module]:
    """Layers with parameters in forward order, looking inside plain nn.Sequential containers."""
    found: list[nn.Module] = []
    for child in module.children():
        if type(child) is nn.Sequential:
            found += _layers(child)
        elif any(True for _ in child.parameters()):
            found.append(child)
    return found


def _blocks(net: nn.Module, head: nn.Module) -> list[list[nn.Module]]:
    """The units `model.freeze=n` counts: each layer with parameters, its batch norm joined to it.

    For an MLP these are its linear layers, for a CNN its convs then its dense layers, for a
    ResNet the stem conv, each residual block, then the output layer.
    """
    blocks: list[list[nn.Module]] = []
    for layer in _layers(net):
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and blocks:
            blocks[-1].append(layer)
        else:
            blocks.append([layer])
    return blocks


class Transfer(nn.Module):
    """The source run's network with a new output layer sized for this data.

    freeze: "all" trains only the new output layer, "none" fine-tunes everything, an integer n
    freezes the first n blocks (layers with parameters in order, a batch norm counted with the
    layer before it; see `_blocks`). Frozen batch-norm
    layers stay in eval mode, so their running statistics do not move either. The `init` group
    applies to the new output layer only (see `initializable`).
    """

    def __init__(
        self, spec: DataSpec, source: str | None = None, freeze: str | int = "all", activation=None
    ) -> None:
        super().__init__()
        if not source:
            raise ConfigError(
                "model=transfer needs model.source: an earlier run's directory or checkpoint."
            )
        self.net = load_run_net(source, spec)
        parent, attribute, old = _last_linear(self.net)
        head = nn.Linear(old.in_features, spec.num_classes)
        setattr(parent, attribute, head)
        # plain references (not submodules), so each parameter is registered once, under net.*
        self.__dict__["head"] = head
        blocks = _blocks(self.net, head)
        if freeze == "all":
            frozen = _all_but(self.net, head)
        elif freeze == "none":
            frozen = []
        elif isinstance(freeze, int) and not isinstance(freeze, bool) and 0 <= freeze < len(blocks):
            frozen = [m for block in blocks[:freeze] for m in block]
        else:
            raise ConfigError(
                f"model.freeze must be all, none or an integer in [0, {len(blocks)}), got {freeze!r}."
            )
        self.__dict__["frozen"] = frozen
        for module in frozen:
            module.requires_grad_(False)
        # Lightning keeps each module's mode as built (it does not call train() at fit start),
        # so frozen batch norms are put in eval mode here as well as in train()
        self.train(self.training)

    @property
    def initializable(self) -> nn.Module:
        return self.head

    def train(self, mode: bool = True) -> Transfer:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
