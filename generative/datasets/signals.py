"""Quantised 1-D signals (WaveNet-style data for sequence models)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from generative.base import DataSpec
from generative.data import DataError, Dataset

LEVELS = 64
SIZES = (5000, 500, 500)


def sample_signals(n: int, length: int, gen: torch.Generator) -> Tensor:
    """``(n, length)`` integer levels of sums of 1-3 random sines plus small noise.

    Each sine has amplitude U[0.3, 1], 1-6 cycles per sequence and a random phase; the sum
    is scaled into [-1, 1] before quantising to :data:`LEVELS` levels.
    """
    t = torch.linspace(0, 1, length)
    k = torch.randint(1, 4, (n, 1), generator=gen)
    active = (torch.arange(3)[None] < k).float()  # (n, 3): how many sines each signal has
    amp = (0.3 + 0.7 * torch.rand(n, 3, generator=gen)) * active
    freq = 1 + 5 * torch.rand(n, 3, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 3, generator=gen)
    waves = amp[..., None] * torch.sin(2 * math.pi * freq[..., None] * t + phase[..., None])
    x = waves.sum(1) / amp.sum(1, keepdim=True)
    x = x + 0.02 * torch.randn(n, length, generator=gen)
    return ((x.clamp(-1, 1) + 1) / 2 * (LEVELS - 1)).round().long()


def signals(*, seed: int = 0, data_root: str | None = None, seq_len: int = 128) -> Dataset:
    """5,000 / 500 / 500 signals ``(N, seq_len)`` with 64 levels, drawn with ``seed``."""
    if seq_len < 2:
        raise DataError(f"invalid seq_len={seq_len} for signals: must be >= 2")
    gen = torch.Generator().manual_seed(seed)
    train, val, test = (sample_signals(n, seq_len, gen) for n in SIZES)
    spec = DataSpec("sequence", (seq_len,), LEVELS)
    return Dataset("signals", spec, train, val, test, {"levels": LEVELS})
