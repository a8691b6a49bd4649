"""A dilated causal convolution model over tokens (WaveNet / TCN style).

Residual blocks of left-padded dilated convolutions with gated activations
(``tanh(a) * sigmoid(b)``) and skip connections. Dilations double within a cycle until the
receptive field covers the ``D`` tokens of an example; cycles repeat.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.autoregressive.base import AutoregressiveModel, check, check_positive, shift_right
from generative.base import DataSpec


@dataclasses.dataclass(frozen=True)
class TCNConfig:
    """Sizes of the dilated causal convolution model (defaults: the digits benchmark)."""

    channels: int = 48
    """Residual channels."""
    kernel_size: int = 2
    """Taps of each dilated convolution."""
    cycles: int = 2
    """Repeats of the doubling dilation cycle 1, 2, 4, ... (each covers the context)."""
    embed: int = 32
    """Embedding size of each input token."""
    dropout: float = 0.3
    """Dropout on the residual branches."""

    def __post_init__(self) -> None:
        check_positive(self, "channels", "cycles", "embed")
        check(self.kernel_size >= 2, "kernel_size", self.kernel_size, ">= 2")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")


def dilation_cycle(length: int, kernel_size: int) -> list[int]:
    """Dilations ``1, k, k², ...`` until the receptive field of the cycle reaches ``length``."""
    dilations, field = [1], kernel_size
    while field < length:
        dilations.append(dilations[-1] * kernel_size)
        field += (kernel_size - 1) * dilations[-1]
    return dilations


class CausalConv1d(nn.Conv1d):
    """A dilated convolution padded on the left only: output ``t`` sees inputs ``<= t``."""

    def forward(self, x: Tensor) -> Tensor:
        pad = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (pad, 0)))


class ResidualBlock(nn.Module):
    """Gated dilated causal convolution with residual and skip outputs, ``(B, C, T)``."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = self.conv(x).chunk(2, 1)
        h = self.drop(torch.tanh(a) * torch.sigmoid(b))
        return x + self.res(h), self.skip(h)


class TCN(AutoregressiveModel):
    """WaveNet-style model: ``D`` tokens, receptive field >= ``D`` per cycle."""

    Config = TCNConfig
    SMOKE: ClassVar[dict] = {"channels": 8, "embed": 4, "cycles": 1}
    TRAIN: ClassVar[dict] = {"steps": 1000, "batch_size": 64, "lr": 2e-3, "eval_every": 100}

    def __init__(self, cfg: TCNConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.start = self.levels
        self.embed = nn.Embedding(self.levels + 1, cfg.embed)
        self.inp = nn.Conv1d(cfg.embed, cfg.channels, 1)
        dilations = dilation_cycle(self.length, cfg.kernel_size) * cfg.cycles
        self.blocks = nn.ModuleList(
            ResidualBlock(cfg.channels, cfg.kernel_size, d, cfg.dropout) for d in dilations
        )
        self.out = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(cfg.channels, cfg.channels, 1),
            nn.ReLU(),
            nn.Conv1d(cfg.channels, self.levels, 1),
        )

    def window_logits(self, tokens: Tensor) -> Tensor:
        """Logits ``(B, K, L)`` of tokens ``(B, K)``, any ``K``."""
        h = self.inp(self.embed(shift_right(tokens, self.start)).transpose(1, 2))
        skips = 0
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip
        return self.out(skips).transpose(1, 2)

    def logits(self, x: Tensor) -> Tensor:
        return self.window_logits(self.tokens(x))
