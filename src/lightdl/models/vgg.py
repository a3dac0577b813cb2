"""VGG-style networks (Simonyan & Zisserman 2014): stages of 3x3 convs, each closed by a 2x2 max-pool."""

from __future__ import annotations

from collections.abc import Sequence

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError
from lightdl.models.cnn import CNN, Activation, image_map


class VGG(CNN):
    """One stage per list in `stages` (its conv widths), then the dense `head`.

    Every conv is 3x3 'same', so only the pools shrink the map; a pool that would take the map
    below one pixel is left out (8x8 digits keep their last stages at 1x1 or 2x2).
    """

    def __init__(
        self,
        spec: DataSpec,
        stages: Sequence[Sequence[int]] = ((32, 32), (64, 64)),
        head: Sequence[int] = (128,),
        activation: Activation | None = None,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        if not stages or any(not stage for stage in stages):
            raise ConfigError(
                f"model.stages must be a list of non-empty lists of widths, got {stages}."
            )
        image_map(spec, "vgg")
        blocks = [
            {"filters": width, "kernel": 3, "pool": "max" if j == len(stage) - 1 else "none"}
            for stage in stages
            for j, width in enumerate(stage)
        ]
        kwargs = {"activation": activation} if activation is not None else {}
        super().__init__(spec, blocks, head=head, dropout=dropout, batchnorm=batchnorm, **kwargs)
