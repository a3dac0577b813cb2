"""Perceptron and multi-layer perceptron: stacks of fully connected layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.data.spec import DataSpec
from lightdl.errors import ConfigError

Activation = Callable[[], nn.Module]
RULES = ("gradient", "perceptron")


class Perceptron(nn.Sequential):
    """One linear layer from the flattened input to one score per class.

    rule=gradient: the scores go to the `loss` group (softmax cross-entropy: logistic regression).
    rule=perceptron: Rosenblatt's learning rule. Each class has a threshold unit o = step(score)
    (activation=step); a misclassified example moves the weights by lr * (target - o) * x.
    That update is exactly SGD on the perceptron criterion sum_j (o_j - t_j) * score_j, which
    `rule_loss` returns, so the rule runs through the ordinary optimizer (optimizer=sgd for the
    classic rule; batch_size=1 for the online version).
    """

    def __init__(
        self, spec: DataSpec, activation: Activation | None = None, rule: str = "gradient"
    ) -> None:
        if rule not in RULES:
            raise ConfigError(f"model.rule must be one of {', '.join(RULES)}, got '{rule}'.")
        super().__init__(nn.Flatten(), nn.Linear(spec.input_dim, spec.num_classes))
        self.rule = rule
        unit = activation() if activation is not None else None
        if rule == "perceptron" and getattr(unit, "differentiable", True):
            raise ConfigError(
                "model.rule=perceptron trains threshold units: use activation=step "
                f"(got {type(unit).__name__})."
            )
        self.__dict__["unit"] = unit  # used by rule_loss only: not a layer of the forward pass

    def rule_loss(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The perceptron criterion: its gradient is -(target - step(score)) * x per unit."""
        fired = self.unit(scores).detach()
        one_hot = F.one_hot(target, scores.shape[-1]).to(scores.dtype)
        return ((fired - one_hot) * scores).sum(dim=-1).mean()


def dense_layers(
    width: int,
    hidden: Sequence[int],
    num_classes: int,
    activation: Callable[[], nn.Module],
    dropout: float = 0.0,
    batchnorm: bool = False,
) -> list[nn.Module]:
    """Linear (-> batchnorm) -> activation (-> dropout) per width in `hidden`, then the output layer.

    A maxout activation (`widen` = k) makes the linear layer before it k times wider.
    """
    layers: list[nn.Module] = []
    for out in hidden:
        unit = activation()
        pieces = getattr(unit, "widen", 1)
        layers.append(nn.Linear(width, out * pieces))
        if batchnorm:
            layers.append(nn.BatchNorm1d(out * pieces))
        layers.append(unit)
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = out
    layers.append(nn.Linear(width, num_classes))
    return layers


class MLP(nn.Sequential):
    """Linear (-> batchnorm) -> activation (-> dropout) per width in `hidden`, then a linear head.

    Batch normalization sits between the affine layer and the activation (as in Ioffe & Szegedy);
    a maxout activation with k pieces makes its linear layer k times wider.
    """

    def __init__(
        self,
        spec: DataSpec,
        hidden: Sequence[int] = (256, 128),
        activation: Activation = nn.ReLU,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        if not hidden and (dropout > 0 or batchnorm):
            which = "dropout" if dropout > 0 else "batchnorm"
            raise ConfigError(
                f"regularizer={which} acts on hidden layers, but model.hidden is empty."
            )
        layers = dense_layers(
            spec.input_dim, hidden, spec.num_classes, activation, dropout, batchnorm
        )
        super().__init__(nn.Flatten(), *layers)
