"""Conditioner networks for coupling layers; their last layer starts at zero so that a new
coupling layer is the identity."""

from __future__ import annotations

from torch import nn


def zero_init(layer: nn.Module) -> nn.Module:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def mlp_conditioner(dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
    """``(B, dim) -> (B, out_dim)``: ``layers`` hidden layers of width ``hidden`` (ReLU)."""
    modules: list[nn.Module] = []
    width = dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(zero_init(nn.Linear(width, out_dim)))
    return nn.Sequential(*modules)


def conv_conditioner(channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """``(B, channels, H, W) -> (B, out_channels, H, W)``: 3x3, 1x1, 3x3 convolutions (ReLU)."""
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(),
        zero_init(nn.Conv2d(hidden, out_channels, 3, padding=1)),
    )
