"""Pictures of samples for people: image grids and 2-D scatter plots as uint8 arrays."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from generative.base import DataSpec


def to_unit(images: Tensor, levels: int | None) -> Tensor:
    """Integer levels (or floats already in [0, 1]) -> floats in [0, 1], same shape."""
    x = images.detach().float().cpu()
    if levels is not None:
        x = x / max(levels - 1, 1)
    return x.clamp(0, 1)


def make_grid(
    images: Tensor, levels: int | None = None, nrow: int | None = None, pad: int = 1
) -> np.ndarray:
    """Tile images ``(N, C, H, W)`` into one RGB picture ``(H', W', 3)`` uint8.

    ``levels`` scales integer levels to [0, 1] (``None``: floats in [0, 1]). ``nrow`` is the
    number of images per row (default: about square). Three channels are shown as RGB;
    any other channel count as one grey image per channel.
    """
    if images.dim() != 4:
        raise ValueError(f"make_grid expects (N, C, H, W), got {tuple(images.shape)}")
    x = to_unit(images, levels)
    n, c, h, w = x.shape
    if c != 3:
        x = x.reshape(n * c, 1, h, w).expand(-1, 3, -1, -1)
        n = n * c
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.full((3, rows * (h + pad) + pad, nrow * (w + pad) + pad), 0.5)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def scatter_image(points: Tensor, size: int = 256, extent: float = 4.0) -> np.ndarray:
    """A 2-D histogram of ``points`` ``(N, 2)`` over ``[-extent, extent]²``: ``(size, size, 3)``.

    Darker pixels hold more points (log-scaled); y points up.
    """
    p = points.detach().float().cpu().numpy()
    counts, _, _ = np.histogram2d(
        p[:, 1], p[:, 0], bins=size, range=[[-extent, extent], [-extent, extent]]
    )
    density = np.log1p(counts[::-1])
    density = density / max(float(density.max()), 1e-9)
    grey = (255 * (1 - density)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def sample_picture(spec: DataSpec, samples: Tensor, nrow: int | None = None) -> np.ndarray | None:
    """A picture of model samples in the format of ``spec``, or ``None`` (e.g. text).

    Images ``(N, C, H, W)`` become a grid; videos ``(N, T, C, H, W)`` one row per video;
    2-D vectors a scatter plot.
    """
    if spec.kind == "image":
        return make_grid(samples, spec.levels, nrow)
    if spec.kind == "video":
        t = samples.shape[1]
        return make_grid(samples.flatten(0, 1), spec.levels, nrow=t)
    if spec.kind == "vector" and spec.shape == (2,):
        return scatter_image(samples)
    return None
