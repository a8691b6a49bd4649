"""Denoisers for vectors and latents: a residual MLP conditioned on the timestep (and,
optionally, on a context vector)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer timesteps ``t (B,)`` (Transformer style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(emb, (0, dim - 2 * half))


class MLPDenoiser(nn.Module):
    """``(x (B, D), t (B,)) -> (B, D_out)``: residual blocks, each told the timestep
    (``D_out = out_dim``, default D).

    Each block adds ``W2 silu(W1 silu(h) + E t_emb)`` to the hidden state ``h``. With
    ``cond_dim > 0`` the call is ``(x, t, cond (B, cond_dim))`` and a linear map of ``cond``
    is added to the timestep's embedding, so every block is told both.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        blocks: int = 3,
        emb_dim: int = 64,
        out_dim: int | None = None,
        cond_dim: int = 0,
    ):
        super().__init__()
        self.emb_dim = emb_dim
        self.time = nn.Sequential(nn.Linear(emb_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.first = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.temb = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.second = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, out_dim or dim)
        self.cond = nn.Linear(cond_dim, hidden) if cond_dim > 0 else None

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.time(timestep_embedding(t, self.emb_dim).to(x.dtype))
        if (cond is None) != (self.cond is None):
            raise ValueError("pass cond exactly when the denoiser was built with cond_dim > 0")
        if self.cond is not None:
            emb = emb + self.cond(cond)
        h = self.inp(x)
        for first, temb, second in zip(self.first, self.temb, self.second, strict=True):
            h = h + second(F.silu(first(F.silu(h)) + temb(emb)))
        return self.out(F.silu(h))
