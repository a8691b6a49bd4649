"""The flow layer contract and the containers that chain layers.

A :class:`Bijection` maps data toward the base distribution: ``forward(x) -> (z, log_det)``
with ``log_det = log |det dz/dx|`` per example ``(B,)``, and ``inverse(z) -> x`` undoes it.
Density evaluation uses ``forward``; sampling uses ``inverse``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Bijection(nn.Module):
    """An invertible map with a tractable log-determinant.

    Subclasses implement ``forward`` and ``inverse``; shape-changing layers also override
    ``out_shape``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, *shape) -> (z (B, *out_shape), log|det dz/dx| (B,))``."""
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:
        """``(B, *out_shape) -> (B, *shape)``."""
        raise NotImplementedError

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one output example given the shape of one input example."""
        return shape


class Reverse(Bijection):
    """Reverse the order of the feature axis (dimension 1); log-det 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z.flip(1)


class Squeeze(Bijection):
    """Trade space for channels: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``; log-det 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, c * 4, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, z: Tensor) -> Tensor:
        b, c, h, w = z.shape
        z = z.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return z.reshape(b, c // 4, h * 2, w * 2)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = shape
        if h % 2 or w % 2:
            raise ValueError(f"cannot squeeze an image of size {h}x{w}: sides must be even")
        return (c * 4, h // 2, w // 2)


class Split(nn.Module):
    """Marker in a :class:`FlowSequence`: factor out the last ``C - C // 2`` channels as latents.

    The factored channels go straight to the base distribution (the multi-scale
    architecture of RealNVP and Glow); the first ``C // 2`` continue through the flow.
    """

    def kept(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0] // 2, *shape[1:])

    def factored(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0] - shape[0] // 2, *shape[1:])


class FlowSequence(Bijection):
    """Layers applied in order, mapping ``(B, *shape)`` to a flat latent ``(B, D)``.

    ``Split`` markers factor out channels; all factored parts and the final output are
    flattened and concatenated in order, so ``D`` equals the number of input dimensions.
    """

    def __init__(self, layers: list[nn.Module], shape: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.shape = tuple(shape)
        pieces = []
        for layer in self.layers:
            if isinstance(layer, Split):
                pieces.append(layer.factored(shape))
                shape = layer.kept(shape)
            else:
                shape = layer.out_shape(shape)
        pieces.append(shape)
        self.pieces = [tuple(p) for p in pieces]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        log_det = x.new_zeros(x.shape[0])
        out = []
        for layer in self.layers:
            if isinstance(layer, Split):
                half = x.shape[1] // 2
                out.append(x[:, half:].flatten(1))
                x = x[:, :half]
            else:
                x, ld = layer(x)
                log_det = log_det + ld
        out.append(x.flatten(1))
        return torch.cat(out, dim=1), log_det

    def inverse(self, z: Tensor) -> Tensor:
        sizes = [math.prod(p) for p in self.pieces]
        parts = [
            part.reshape(z.shape[0], *p)
            for part, p in zip(z.split(sizes, dim=1), self.pieces, strict=True)
        ]
        x = parts.pop()
        for layer in reversed(self.layers):
            x = torch.cat([x, parts.pop()], 1) if isinstance(layer, Split) else layer.inverse(x)
        return x

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)


class Flatten(Bijection):
    """``(B, *shape) -> (B, D)`` so that vector flows (MAF, IAF) can model images; log-det 0."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flatten(1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z.reshape(z.shape[0], *self.shape)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)
