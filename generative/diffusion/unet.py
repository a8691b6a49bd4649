"""A small U-Net denoiser for images: residual blocks told the timestep, skip connections."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from generative.diffusion.denoisers import timestep_embedding


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """``(B, C_in, H, W), emb (B, E) -> (B, C_out, H, W)``; the timestep shifts the features."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """``(x (B, C, H, W), t (B,)) -> (B, C_out, H, W)`` (``C_out = out_channels``, default C).

    One residual block per resolution on the way down and up, ``len(mults) - 1``
    stride-2 downsamplings (so ``2 ** (len(mults) - 1)`` must divide H and W).
    """

    def __init__(
        self,
        channels: int,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2),
        out_channels: int | None = None,
    ):
        super().__init__()
        self.emb_dim = base * 4
        self.time = nn.Sequential(
            nn.Linear(base, self.emb_dim), nn.SiLU(), nn.Linear(self.emb_dim, self.emb_dim)
        )
        self.base = base
        widths = [base * m for m in mults]
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = base
        for i, w in enumerate(widths):
            self.down.append(ResBlock(c, w, self.emb_dim))
            c = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, self.emb_dim)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            self.up.append(ResBlock(c + w, w, self.emb_dim))
            c = w
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        out = out_channels or channels
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, out, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time(timestep_embedding(t, self.base).to(x.dtype))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)
