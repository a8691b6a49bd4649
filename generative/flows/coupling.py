"""Affine coupling layers (RealNVP, Glow) and the masks that choose which half conditions.

With mask ``m`` (1 = passes through and conditions), the layer computes
``z = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x))``, so ``log|det dz/dx| = sum((1 - m) s)``
and the inverse needs one pass of the conditioner.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generative.flows.bijection import Bijection


def checkerboard_mask(shape: tuple[int, ...], parity: int) -> Tensor:
    """``(C, H, W)`` mask of alternating ones and zeros over the pixel grid."""
    c, h, w = shape
    grid = (torch.arange(h)[:, None] + torch.arange(w)[None, :] + parity) % 2
    return grid.float().expand(c, h, w).clone()


def channel_mask(shape: tuple[int, ...], parity: int) -> Tensor:
    """``(C, 1, 1)`` mask selecting the first ``C // 2`` channels (the others when ``parity``)."""
    c = shape[0]
    mask = (torch.arange(c) < c // 2).float()
    if parity:
        mask = 1.0 - mask
    return mask[:, None, None]


def half_mask(dim: int, parity: int) -> Tensor:
    """``(D,)`` mask selecting the first ``D // 2`` features (the others when ``parity``)."""
    mask = (torch.arange(dim) < dim // 2).float()
    return 1.0 - mask if parity else mask


class AffineCoupling(Bijection):
    """Affine coupling with a fixed binary mask and a conditioner network.

    ``net`` maps the masked input ``(B, C, ...)`` to ``(B, 2C, ...)`` (log-scale and
    shift). The log-scale is ``scale * tanh(raw)``, which keeps early training stable; a
    zero-initialised ``net`` makes the layer the identity.
    """

    def __init__(self, mask: Tensor, net: nn.Module):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.scale = nn.Parameter(torch.ones(mask.shape[0], *([1] * (mask.dim() - 1))))

    def _scale_shift(self, x_masked: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.net(x_masked).chunk(2, dim=1)
        free = 1.0 - self.mask
        return self.scale * torch.tanh(raw_s) * free, t * free

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._scale_shift(x * self.mask)
        return x * torch.exp(s) + t, s.flatten(1).sum(1)

    def inverse(self, z: Tensor) -> Tensor:
        s, t = self._scale_shift(z * self.mask)
        return (z - t) * torch.exp(-s)
