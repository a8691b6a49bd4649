"""Encoders and decoders shared by the VAE family and the world models.

MLPs work on any example shape (they flatten it). The conv stacks work on images of any
size ``(C, H, W)``: each entry of ``channels`` is one stride-2 stage that halves the
spatial size (rounding up), so 8x8 with two stages ends at 2x2, 28x28 with three at 4x4,
and 64x64 with four at 4x4; the decoder retraces the same sizes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """A SiLU MLP ``(B, in_features) -> (B, out_features)`` with the given hidden widths."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def halved_sizes(size: tuple[int, int], stages: int) -> list[tuple[int, int]]:
    """Spatial sizes after each stride-2 stage, input included: ``stages + 1`` entries."""
    sizes = [tuple(size)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return sizes


class MLPEncoder(nn.Module):
    """``(B, *in_shape) -> (B, out_features)``: flatten, then an MLP."""

    def __init__(self, in_shape: Sequence[int], out_features: int, hidden: Sequence[int] = (256,)):
        super().__init__()
        self.net = mlp(math.prod(in_shape), hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    """``(B, in_features) -> (B, *out_shape)``: an MLP, then reshape."""

    def __init__(self, in_features: int, out_shape: Sequence[int], hidden: Sequence[int] = (256,)):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.net = mlp(in_features, hidden, math.prod(self.out_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class ConvEncoder(nn.Module):
    """Stride-2 3x3 conv stages, then a head.

    ``(B, C, H, W) -> (B, out_features)`` with a linear head (``spatial=False``), or
    ``-> (B, out_features, h, w)`` with a 1x1 conv head (``spatial=True``, as VQ-VAE needs),
    where ``(h, w)`` is :attr:`feature_size`.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (32, 64),
        spatial: bool = False,
    ):
        super().__init__()
        c_in, h, w = in_shape
        if not channels:
            raise ValueError("ConvEncoder needs at least one stage in channels")
        self.feature_size = halved_sizes((h, w), len(channels))[-1]
        layers: list[nn.Module] = []
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.SiLU()]
            c_in = c
        self.trunk = nn.Sequential(*layers)
        fh, fw = self.feature_size
        self.head: nn.Module
        if spatial:
            self.head = nn.Conv2d(c_in, out_features, 1)
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * fh * fw, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: a head, then stride-2 transposed conv stages.

    ``(B, in_features) -> (B, *out_shape)`` through a linear head (``spatial=False``), or
    ``(B, in_features, h, w) -> (B, *out_shape)`` through a 1x1 conv (``spatial=True``).
    ``channels`` is given in the encoder's order (it is traversed backwards).
    ``final_conv=False`` lets the last transposed conv emit the output channels itself, as
    Dreamer's decoder does, instead of following it with a 3x3 conv at full resolution:
    those two full-size layers are most of a pixel decoder's cost.
    """

    def __init__(
        self,
        in_features: int,
        out_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        spatial: bool = False,
        final_conv: bool = True,
    ):
        super().__init__()
        c_out, h, w = out_shape
        if not channels:
            raise ValueError("ConvDecoder needs at least one stage in channels")
        self.out_shape = tuple(out_shape)
        sizes = halved_sizes((h, w), len(channels))
        self.feature_shape = (channels[-1], *sizes[-1])
        self.head: nn.Module
        if spatial:
            self.head = nn.Conv2d(in_features, channels[-1], 1)
        else:
            self.head = nn.Linear(in_features, math.prod(self.feature_shape))
        layers: list[nn.Module] = [nn.SiLU()]
        widths = [*reversed(channels), channels[0] if final_conv else c_out]
        for i in range(len(channels)):
            (sh, sw), (th, tw) = sizes[-1 - i], sizes[-2 - i]
            # Each stage doubles the size; output_padding trims one row/column where the
            # encoder rounded an odd size up.
            pad = (th - (2 * sh - 1), tw - (2 * sw - 1))
            layers += [
                nn.ConvTranspose2d(
                    widths[i], widths[i + 1], 3, stride=2, padding=1, output_padding=pad
                ),
                nn.SiLU(),
            ]
        if final_conv:
            layers.append(nn.Conv2d(channels[0], c_out, 3, padding=1))
        else:
            layers.pop()  # the output stays linear
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.head(z)
        if features.dim() == 2:
            features = features.view(z.shape[0], *self.feature_shape)
        return self.body(features)
