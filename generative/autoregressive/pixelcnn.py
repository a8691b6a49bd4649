"""PixelCNN (masked convolutions) and the gated PixelCNN without a blind spot.

:class:`PixelCNNNet` is the reusable network: any number of channels ``C``, levels ``L`` and
image size, e.g. a prior over the ``(1, h, w)`` code maps of a VQ-VAE. Pixels are ordered
in raster order and, within a pixel, channel 0 before 1 before 2 (each channel's logits may
use the earlier channels of the same pixel). Features are split into ``C`` contiguous
groups, one per channel, and the masks let group ``g`` see groups ``< g`` (mask A) or
``<= g`` (mask B) at the current pixel.

- plain (van den Oord et al. 2016a): a 7x7 mask-A convolution, then residual 3x3 mask-B
  convolutions; its receptive field has a blind spot up and to the right.
- gated (van den Oord et al. 2016b): a vertical stack sees the rows above (its features are
  shifted down one row before they reach the other stack), a horizontal stack sees the
  pixels to the left in the current row; both use ``tanh(a) * sigmoid(b)`` gates, and the
  horizontal stack has residual connections. Together they see every earlier pixel.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.autoregressive.base import (
    AutoregressiveModel,
    check,
    check_positive,
    sample_categorical,
)
from generative.base import DataSpec


def channel_groups(features: int, channels: int) -> Tensor:
    """Group (image channel) of each of ``features`` features: ``C`` contiguous blocks."""
    return torch.arange(features) * channels // features


def center_mask(out_groups: Tensor, in_groups: Tensor, mask_type: str) -> Tensor:
    """``(out, in)`` links allowed at the current pixel: A from earlier groups, B also the same."""
    if mask_type == "A":
        return (in_groups[None, :] < out_groups[:, None]).float()
    return (in_groups[None, :] <= out_groups[:, None]).float()


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel only reaches earlier pixels (and channel groups).

    ``shape="full"``: a ``k x k`` kernel centred on the pixel (rows above, and pixels to
    the left in the current row). ``shape="row"``: a ``1 x (k // 2 + 1)`` kernel ending at
    the pixel (the pixels to its left), padded on the left. The current pixel's tap follows
    ``mask_type`` and the channel groups (see :func:`center_mask`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str,
        in_groups: Tensor,
        out_groups: Tensor,
        shape: str = "full",
    ):
        k = kernel_size
        size = (k, k) if shape == "full" else (1, k // 2 + 1)
        super().__init__(in_channels, out_channels, size)
        self.pad = (k // 2, k // 2, k // 2, k // 2) if shape == "full" else (k // 2, 0, 0, 0)
        kh, kw = size
        row, col = (k // 2, k // 2) if shape == "full" else (0, kw - 1)
        mask = torch.zeros(out_channels, in_channels, kh, kw)
        mask[:, :, :row] = 1
        mask[:, :, row, :col] = 1
        mask[:, :, row, col] = center_mask(out_groups, in_groups, mask_type)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)


def masked_1x1(in_groups: Tensor, out_groups: Tensor) -> MaskedConv2d:
    """A mask-B 1x1 convolution: features of group ``g`` mix groups ``<= g``."""
    return MaskedConv2d(len(in_groups), len(out_groups), 1, "B", in_groups, out_groups)


class GatedLayer(nn.Module):
    """One gated layer of both stacks: ``(v, h) -> (v', h')``, each ``(B, F, H, W)``.

    The first layer (``first=True``) reads the input features with mask A and has no
    residual connection.
    """

    def __init__(
        self, in_groups: Tensor, groups: Tensor, kernel_size: int, first: bool, dropout: float
    ):
        super().__init__()
        n_in, n = len(in_groups), len(groups)
        k = kernel_size
        groups2 = torch.cat([groups, groups])  # both halves of a gate share the groups
        # Vertical: rows r - k//2 .. r (all columns within k//2); shifted down before use.
        self.v_conv = nn.Conv2d(n_in, 2 * n, (k // 2 + 1, k))
        self.v_pad = (k // 2, k // 2, k // 2, 0)
        self.h_conv = MaskedConv2d(
            n_in, 2 * n, k, "A" if first else "B", in_groups, groups2, shape="row"
        )
        self.v_to_h = nn.Conv2d(2 * n, 2 * n, 1)
        self.h_out = masked_1x1(groups, groups)
        self.first = first
        self.drop = nn.Dropout(dropout)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        v_pre = self.v_conv(F.pad(v, self.v_pad))
        # Shift down one row: row r of the horizontal stack gets the vertical rows < r.
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]
        h_pre = self.h_conv(h) + self.v_to_h(v_down)
        v_new = gate(v_pre)
        h_new = self.h_out(self.drop(gate(h_pre)))
        return v_new, h_new if self.first else h + h_new


def gate(x: Tensor) -> Tensor:
    """``tanh(a) * sigmoid(b)`` of the two channel halves: ``(B, 2F, ...) -> (B, F, ...)``."""
    a, b = x.chunk(2, 1)
    return torch.tanh(a) * torch.sigmoid(b)


class PixelCNNNet(nn.Module):
    """Logits of every pixel's value given the earlier pixels: ``(B, C, H, W) -> (B, L, C, H, W)``.

    Parameters
    ----------
    in_channels: image channels ``C``.
    levels: values per channel ``L`` (e.g. 256, or the codebook size of a VQ-VAE).
    hidden: features per layer (rounded up to a multiple of ``C``).
    layers: masked (or gated) layers after the input layer.
    gated: the gated two-stack network (no blind spot) instead of the plain one.
    kernel_size: odd kernel size of the hidden layers (the plain input layer uses 7).
    embed: embedding size of each channel's value at the input.
    dropout: dropout on the hidden features.

    Works on any ``H x W``; :meth:`log_prob` and :meth:`sample` make it a prior on its own.
    """

    def __init__(
        self,
        in_channels: int,
        levels: int,
        hidden: int = 64,
        layers: int = 6,
        gated: bool = True,
        kernel_size: int = 3,
        embed: int = 16,
        dropout: float = 0.0,
    ):
        super().__init__()
        c = in_channels
        hidden = -(-hidden // c) * c
        self.in_channels, self.levels, self.gated = c, levels, gated
        in_groups = channel_groups(c * embed, c)
        groups = channel_groups(hidden, c)
        out_groups = channel_groups(c * levels, c)
        # One embedding table per channel, so channel c's value lands in group c.
        self.embed = nn.Embedding(c * levels, embed)
        self.register_buffer("offsets", torch.arange(c) * levels, persistent=False)
        if gated:
            self.layers = nn.ModuleList(
                GatedLayer(in_groups if i == 0 else groups, groups, kernel_size, i == 0, dropout)
                for i in range(layers + 1)
            )
        else:
            self.first = MaskedConv2d(c * embed, hidden, 7, "A", in_groups, groups)
            self.layers = nn.ModuleList(
                MaskedConv2d(hidden, hidden, kernel_size, "B", groups, groups)
                for _ in range(layers)
            )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.ReLU(),
            masked_1x1(groups, groups),
            nn.ReLU(),
            masked_1x1(groups, out_groups),
        )

    def features(self, x: Tensor) -> Tensor:
        """Integer image ``(B, C, H, W)`` -> input features ``(B, C * embed, H, W)``."""
        e = self.embed(x.long() + self.offsets[None, :, None, None])  # (B, C, H, W, E)
        return e.permute(0, 1, 4, 2, 3).flatten(1, 2)

    def logits_from_features(self, f: Tensor) -> Tensor:
        """Input features ``(B, C * embed, H, W)`` -> logits ``(B, L, C, H, W)``."""
        if self.gated:
            v, h = f, f
            for layer in self.layers:
                v, h = layer(v, h)
        else:
            h = self.first(f)
            for layer in self.layers:
                h = h + self.drop(layer(F.relu(h)))
        out = self.head(h)
        b, _, height, width = out.shape
        return out.view(b, self.in_channels, self.levels, height, width).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """Integer image ``(B, C, H, W)`` -> logits ``(B, L, C, H, W)``."""
        return self.logits_from_features(self.features(x))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` of integer images ``(B, C, H, W)``: ``(B,)`` nats."""
        nll = F.cross_entropy(self(x), x.long(), reduction="none")
        return -nll.flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, height: int, width: int, temperature: float = 1.0) -> Tensor:
        """``n`` images ``(n, C, height, width)``, one pixel and channel at a time."""
        device = self.embed.weight.device
        x = torch.zeros(n, self.in_channels, height, width, dtype=torch.long, device=device)
        for i in range(height):
            for j in range(width):
                for c in range(self.in_channels):
                    logits = self(x)[:, :, c, i, j]
                    x[:, c, i, j] = sample_categorical(logits, temperature)
        return x


@dataclasses.dataclass(frozen=True)
class PixelCNNConfig:
    """Sizes of a PixelCNN (defaults: the digits benchmark)."""

    hidden: int = 32
    """Features per layer."""
    layers: int = 6
    """Layers after the input layer."""
    kernel_size: int = 3
    """Odd kernel size of the hidden layers."""
    embed: int = 16
    """Embedding size of each channel's input value."""
    dropout: float = 0.2
    """Dropout on hidden features (digits has 1,000 training images: it overfits fast)."""

    def __post_init__(self) -> None:
        check_positive(self, "hidden", "layers", "embed")
        check(self.kernel_size % 2 == 1, "kernel_size", self.kernel_size, "odd")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")


class PixelCNN(AutoregressiveModel):
    """PixelCNN over images ``(C, H, W)`` with masked convolutions (it has a blind spot)."""

    GATED: ClassVar[bool] = False
    KINDS: ClassVar[tuple[str, ...]] = ("image",)
    Config = PixelCNNConfig
    SMOKE: ClassVar[dict] = {"hidden": 8, "layers": 1, "embed": 4}
    TRAIN: ClassVar[dict] = {"steps": 1000, "batch_size": 64, "lr": 1e-3, "eval_every": 100}

    def __init__(self, cfg: PixelCNNConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.net = PixelCNNNet(
            spec.shape[0],
            self.levels,
            hidden=cfg.hidden,
            layers=cfg.layers,
            gated=self.GATED,
            kernel_size=cfg.kernel_size,
            embed=cfg.embed,
            dropout=cfg.dropout,
        )

    def logits(self, x: Tensor) -> Tensor:
        out = self.net(x)  # (B, L, C, H, W)
        return out.permute(0, 3, 4, 2, 1).reshape(x.shape[0], -1, self.levels)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.net.log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        _, h, w = self.spec.shape
        return self.net.sample(n, h, w, temperature)


@dataclasses.dataclass(frozen=True)
class GatedPixelCNNConfig(PixelCNNConfig):
    """Sizes of a gated PixelCNN (defaults: the digits benchmark)."""

    hidden: int = 64
    """Features per layer."""
    dropout: float = 0.3
    """Dropout on hidden features."""


class GatedPixelCNN(PixelCNN):
    """Gated PixelCNN: vertical and horizontal stacks, no blind spot."""

    GATED = True
    Config = GatedPixelCNNConfig
    TRAIN: ClassVar[dict] = {"steps": 600, "batch_size": 64, "lr": 2e-3, "eval_every": 100}
