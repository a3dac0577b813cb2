"""LeNet-5 (LeCun et al. 1998): conv5x5(6) -> pool -> conv5x5(16) -> pool -> 120 -> 84 -> classes."""

from __future__ import annotations

from lightdl.data.spec import DataSpec
from lightdl.models.cnn import CNN, Activation, conv_output_size, image_map


class LeNet(CNN):
    """LeNet-5 on any image size: 32x32 and 28x28 inputs both reach 16 maps of 5x5 (400 features).

    The first conv pads ('same') inputs smaller than 32 pixels, as MNIST's 28x28 digits were padded
    to 32x32; the second is 'valid' unless the map is already smaller than its 5x5 kernel (8x8
    digits, vectors). `pool: avg` is the original subsampling; `max` is the modern choice.
    """

    def __init__(
        self,
        spec: DataSpec,
        pool: str = "avg",
        activation: Activation | None = None,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        _, size = image_map(spec, "lenet")
        first = "same" if min(size) < 32 else "valid"
        pooled = min(conv_output_size(w, 5, 1, first) for w in size) // 2
        second = "valid" if pooled >= 5 else "same"
        blocks = [
            {"filters": 6, "kernel": 5, "padding": first, "pool": pool},
            {"filters": 16, "kernel": 5, "padding": second, "pool": pool},
        ]
        kwargs = {"activation": activation} if activation is not None else {}
        super().__init__(
            spec, blocks, head=[120, 84], dropout=dropout, batchnorm=batchnorm, **kwargs
        )
