"""MADE: a masked MLP whose output for feature ``i`` depends only on features ``< i``."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed ``(out, in)`` binary mask."""

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """``(B, D) -> (B, outputs, D)`` autoregressive in the natural feature order.

    Input ``i`` has degree ``i + 1``; hidden units get degrees spread over ``1 .. D - 1``; a
    hidden unit sees inputs of degree ``<=`` its own, an output of degree ``d`` sees hidden
    units of degree ``< d``. So output ``[:, k, i]`` is a function of ``x[:, :i]`` only.
    The output layer starts at zero.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...], outputs: int = 2):
        super().__init__()
        self.dim, self.outputs = dim, outputs
        degrees = [torch.arange(1, dim + 1)]
        for width in hidden:  # spread evenly over 1 .. D-1, all of them once width >= D-1
            degrees.append(torch.arange(width) * max(1, dim - 1) // width + 1)
        layers: list[nn.Module] = []
        for prev, cur in itertools.pairwise(degrees):
            layers += [MaskedLinear(cur[:, None] >= prev[None, :]), nn.ReLU()]
        out_degrees = degrees[0].repeat(outputs)
        last = MaskedLinear(out_degrees[:, None] > degrees[-1][None, :])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view(x.shape[0], self.outputs, self.dim)
