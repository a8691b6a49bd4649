"""Procedural dSprites-style shapes with known factors, as images and as short videos.

Factors follow dSprites: shape (square, ellipse, heart), scale (6 values in [0.5, 1]),
rotation (40 values in [0, 2π)), x and y (32 values each in [0, 1]). Images are binary
``(1, size, size)``; nothing is read from disk, and ``seed`` fixes every draw.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from generative.base import DataSpec
from generative.data import DataError, Dataset

SHAPES = ("square", "ellipse", "heart")
FACTORS = ("shape", "scale", "rotation", "x", "y")
SCALES = torch.linspace(0.5, 1.0, 6)
ROTATIONS = torch.arange(40) * (2 * math.pi / 40)
POSITIONS = torch.linspace(0.0, 1.0, 32)
CHUNK = 512  # images rendered at once (bounds the memory of the coordinate grids)


def render(factors: Tensor, size: int = 64) -> Tensor:
    """Binary images ``(N, 1, size, size)`` uint8 from factors ``(N, 5)``.

    ``factors`` columns are (shape index, scale, rotation in radians, x, y) with x, y in
    [0, 1]; the centre maps to pixels ``[size/8, 7 size/8]`` and scale 1 spans about a
    third of the image.
    """
    out = []
    for chunk in factors.split(CHUNK):
        out.append(_render_chunk(chunk, size))
    return torch.cat(out) if out else torch.zeros(0, 1, size, size, dtype=torch.uint8)


def _render_chunk(f: Tensor, size: int) -> Tensor:
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    shape, scale, rot, x, y = (f[:, i, None, None] for i in range(5))
    cx = size / 8 + x * size * 0.75
    cy = size / 8 + y * size * 0.75
    radius = scale * size / 6
    dx = (grid[None, None, :] - cx) / radius
    dy = (grid[None, :, None] - cy) / radius
    cos, sin = torch.cos(rot), torch.sin(rot)
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    square = torch.maximum(u.abs(), v.abs()) <= 0.8
    ellipse = u**2 + (v / 0.5) ** 2 <= 1.0
    hu, hv = u * 1.1, -v * 1.1 + 0.1  # centre the heart curve and point it downwards
    heart = (hu**2 + hv**2 - 1) ** 3 - hu**2 * hv**3 <= 0
    mask = torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))
    return mask[:, None].to(torch.uint8)


def sample_factors(n: int, gen: torch.Generator) -> Tensor:
    """``(n, 5)`` factors drawn uniformly from the dSprites grids."""
    pick = lambda values: values[torch.randint(0, len(values), (n,), generator=gen)]  # noqa: E731
    shape = torch.randint(0, len(SHAPES), (n,), generator=gen).float()
    return torch.stack([shape, pick(SCALES), pick(ROTATIONS), pick(POSITIONS), pick(POSITIONS)], 1)


def sprites(
    *, seed: int = 0, data_root: str | None = None, size: int = 64, n: int = 10000
) -> Dataset:
    """``n`` / ``n // 10`` / ``n // 10`` binary sprite images ``(1, size, size)``.

    ``meta["factors"][split]`` holds each split's ``(N, 5)`` factors (names in
    ``meta["factor_names"]``).
    """
    _check(size, n)
    gen = torch.Generator().manual_seed(seed)
    factors = {
        s: sample_factors(k, gen) for s, k in zip(("train", "val", "test"), _sizes(n), strict=True)
    }
    images = {s: render(f, size) for s, f in factors.items()}
    meta = {"factors": factors, "factor_names": FACTORS, "shapes": SHAPES}
    spec = DataSpec("image", (1, size, size), 2)
    return Dataset("sprites", spec, images["train"], images["val"], images["test"], meta)


def sample_trajectories(n: int, frames: int, gen: torch.Generator) -> Tensor:
    """``(n, frames, 5)`` factors: a fixed shape and scale, bouncing position, steady spin."""
    start = sample_factors(n, gen)
    velocity = (torch.rand(n, 2, generator=gen) - 0.5) * 0.2
    spin = (torch.rand(n, generator=gen) - 0.5) * 0.6
    steps = torch.arange(frames, dtype=torch.float32)
    # Reflecting at 0 and 1: fold the unbounded path into [0, 1] with a triangle wave.
    path = start[:, None, 3:5] + velocity[:, None] * steps[None, :, None]
    folded = 1 - (path.remainder(2) - 1).abs()
    traj = start[:, None].repeat(1, frames, 1)
    traj[..., 2] = (start[:, None, 2] + spin[:, None] * steps).remainder(2 * math.pi)
    traj[..., 3:5] = folded
    return traj


def moving_sprites(
    *,
    seed: int = 0,
    data_root: str | None = None,
    size: int = 64,
    frames: int = 16,
    n: int = 1000,
) -> Dataset:
    """Videos ``(frames, 1, size, size)`` of one sprite moving, bouncing off the walls, spinning.

    ``n`` / ``n // 10`` / ``n // 10`` videos; ``meta["factors"][split]`` is ``(N, frames, 5)``.
    """
    _check(size, n)
    if frames < 2:
        raise DataError(f"invalid frames={frames}: must be >= 2")
    gen = torch.Generator().manual_seed(seed)
    factors = {
        s: sample_trajectories(k, frames, gen)
        for s, k in zip(("train", "val", "test"), _sizes(n), strict=True)
    }
    videos = {
        s: render(f.reshape(-1, 5), size).view(f.shape[0], frames, 1, size, size)
        for s, f in factors.items()
    }
    meta = {"factors": factors, "factor_names": FACTORS, "shapes": SHAPES}
    spec = DataSpec("video", (frames, 1, size, size), 2)
    return Dataset("moving-sprites", spec, videos["train"], videos["val"], videos["test"], meta)


def _sizes(n: int) -> tuple[int, int, int]:
    return n, max(1, n // 10), max(1, n // 10)


def _check(size: int, n: int) -> None:
    if size < 8:
        raise DataError(f"invalid size={size}: must be >= 8")
    if n < 1:
        raise DataError(f"invalid n={n}: must be >= 1")
