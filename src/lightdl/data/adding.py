"""The adding problem (Hochreiter & Schmidhuber, 1997), as classification: a long-range dependency.

Each step carries two features: a digit (0..9, scaled to [0, 1]) and a marker. Exactly two steps
are marked, one in each half of the sequence; the target is the sum of the two marked digits
(19 classes, 0..18). Everything between the markers is distraction, so a model must keep one
digit in its state across up to `length` steps. Always guessing 9, the likeliest sum, is right
10% of the time: a model that cannot carry information that far stays at that baseline.
"""

from __future__ import annotations

import torch

NUM_CLASSES = 19
BASELINE_ACCURACY = 0.10  # P(sum = 9) = 10/100: the best guess without memory


def adding_problem(
    n: int, length: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x float32 (n, length, 2), y int64 (n,)): x[..., 0] = digit / 9, x[..., 1] = marker."""
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")
    digits = torch.randint(0, 10, (n, length), generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    rows = torch.arange(n)
    marker = torch.zeros(n, length)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = torch.stack([digits.float() / 9.0, marker], dim=-1)
    y = digits[rows, first] + digits[rows, second]
    return x, y
