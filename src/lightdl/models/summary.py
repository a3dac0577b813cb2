"""A Keras-style model summary: each layer, its output shape and parameter count."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def count_params(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def summarize(model: nn.Module, example: torch.Tensor) -> str:
    """Run `example` through `model` and tabulate the leaf layers (recurrent layers count as leaves)."""
    rows: list[tuple[str, str, int]] = []
    hooks = []

    def record(name: str):
        def hook(module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, PackedSequence):  # recurrent layers on padded token data
                out = pad_packed_sequence(out, batch_first=True)[0]
            shape = "(None, " + ", ".join(str(d) for d in out.shape[1:]) + ")"
            params = sum(p.numel() for p in module.parameters())
            rows.append((f"{name} ({type(module).__name__})", shape, params))

        return hook

    for name, module in model.named_modules():
        is_leaf = not any(True for _ in module.children()) or isinstance(module, nn.RNNBase)
        inside_rnn = any(
            isinstance(m, nn.RNNBase) and name.startswith(n + ".") for n, m in model.named_modules()
        )
        if name and is_leaf and not inside_rnn:
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for handle in hooks:
            handle.remove()
    width = max([len(r[0]) for r in rows] + [24]) + 2
    rule = "=" * (width + 36)
    lines = [
        f'Model: "{type(model).__name__}"',
        rule,
        f"{'Layer (type)':<{width}}{'Output Shape':<24}{'Param #':>12}",
        rule,
    ]
    lines += [f"{name:<{width}}{shape:<24}{params:>12,}" for name, shape, params in rows]
    total, trainable = count_params(model, False), count_params(model)
    lines += [
        rule,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        "_" * (width + 36),
    ]
    return "\n".join(lines)
