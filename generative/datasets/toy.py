"""2-D toy densities for flows, diffusion and GANs: float ``(N, 2)`` points, roughly in [-4, 4]².

Every sampler takes a ``torch.Generator``; the loaders seed it with ``seed``, so the same seed
gives the same points. Validation and test sets are a tenth of the training size each.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from generative.base import DataSpec
from generative.data import DataError, Dataset

Sampler = Callable[[int, torch.Generator], Tensor]


def sample_moons(n: int, gen: torch.Generator, noise: float = 0.1) -> Tensor:
    """Two interleaved half circles ``(n, 2)``."""
    t = torch.rand(n, generator=gen) * math.pi
    upper = torch.rand(n, generator=gen) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    points = torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=gen)
    return 2 * (points - torch.tensor([0.5, 0.25]))


EIGHT_GAUSSIANS_STD = 0.25


def eight_gaussian_centers(radius: float = 2.5) -> Tensor:
    """``(8, 2)`` the modes of the eight-gaussians toy, evenly spaced on a circle."""
    angle = torch.arange(8).float() * (2 * math.pi / 8)
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)


def sample_eight_gaussians(n: int, gen: torch.Generator, radius: float = 2.5) -> Tensor:
    """Eight gaussians (std 0.25) evenly spaced on a circle ``(n, 2)``."""
    mode = torch.randint(0, 8, (n,), generator=gen)
    centers = eight_gaussian_centers(radius)[mode]
    return centers + EIGHT_GAUSSIANS_STD * torch.randn(n, 2, generator=gen)


def sample_checkerboard(n: int, gen: torch.Generator) -> Tensor:
    """Uniform on the dark squares of a 4x4 checkerboard over [-4, 4]² ``(n, 2)``."""
    x = torch.rand(n, generator=gen) * 4 - 2
    row = torch.randint(0, 2, (n,), generator=gen) * 2
    y = torch.rand(n, generator=gen) - row + (torch.floor(x) % 2)
    return 2 * torch.stack([x, y], 1)


def sample_pinwheel(n: int, gen: torch.Generator, arms: int = 5) -> Tensor:
    """A pinwheel of ``arms`` curved gaussian arms ``(n, 2)``."""
    arm = torch.randint(0, arms, (n,), generator=gen).float()
    radial = 1 + 0.3 * torch.randn(n, generator=gen)
    tangential = 0.05 * torch.randn(n, generator=gen)
    angle = arm * (2 * math.pi / arms) + 0.25 * math.exp(1) * radial.clamp(min=0)
    c, s = torch.cos(angle), torch.sin(angle)
    x = radial * c - tangential * s
    y = radial * s + tangential * c
    return 2 * torch.stack([x, y], 1)


def sample_two_spirals(n: int, gen: torch.Generator) -> Tensor:
    """Two interleaved spirals ``(n, 2)``."""
    t = torch.sqrt(torch.rand(n, generator=gen)) * 3 * math.pi
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    x = sign * -torch.cos(t) * t
    y = sign * torch.sin(t) * t
    points = torch.stack([x, y], 1) / 2.5
    return points + 0.1 * torch.randn(n, 2, generator=gen)


def toy_dataset(name: str, sampler: Sampler, seed: int, n: int) -> Dataset:
    """Train ``n`` points, validation and test ``n // 10`` each, all from one seeded generator."""
    if n < 10:
        raise DataError(f"invalid n={n} for {name}: must be >= 10")
    gen = torch.Generator().manual_seed(seed)
    train, val, test = (sampler(size, gen) for size in (n, n // 10, n // 10))
    return Dataset(name, DataSpec("vector", (2,)), train, val, test, {"density": name})


def moons(*, seed: int = 0, data_root: str | None = None, n: int = 20000) -> Dataset:
    return toy_dataset("moons", sample_moons, seed, n)


def eight_gaussians(*, seed: int = 0, data_root: str | None = None, n: int = 20000) -> Dataset:
    return toy_dataset("8gaussians", sample_eight_gaussians, seed, n)


def checkerboard(*, seed: int = 0, data_root: str | None = None, n: int = 20000) -> Dataset:
    return toy_dataset("checkerboard", sample_checkerboard, seed, n)


def pinwheel(*, seed: int = 0, data_root: str | None = None, n: int = 20000) -> Dataset:
    return toy_dataset("pinwheel", sample_pinwheel, seed, n)


def two_spirals(*, seed: int = 0, data_root: str | None = None, n: int = 20000) -> Dataset:
    return toy_dataset("2spirals", sample_two_spirals, seed, n)
