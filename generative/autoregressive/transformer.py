"""A small decoder-only transformer over tokens (characters or pixel sequences).

Pre-norm blocks of causal self-attention and an MLP, learned position embeddings over the
``D`` positions of an example, and a start token in front so position ``i`` predicts token
``i`` from tokens ``< i``.
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
class TransformerConfig:
    """Sizes of the causal transformer (defaults: the digits benchmark)."""

    width: int = 64
    """Embedding width (divisible by heads)."""
    layers: int = 4
    """Transformer blocks."""
    heads: int = 4
    """Attention heads per block."""
    mlp_ratio: int = 4
    """Hidden width of each block's MLP, as a multiple of width."""
    dropout: float = 0.1
    """Dropout on attention weights, residual branches and embeddings."""

    def __post_init__(self) -> None:
        check_positive(self, "width", "layers", "heads", "mlp_ratio")
        check(self.width % self.heads == 0, "width", self.width, "divisible by heads")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position ``i`` attends to positions ``<= i``: ``(B, T, W)``."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, w)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``, ``(B, T, W)``."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width),
            nn.GELU(),
            nn.Linear(mlp_ratio * width, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(AutoregressiveModel):
    """Decoder-only transformer; context = the ``D`` tokens of one example (``T`` for text)."""

    Config = TransformerConfig
    SMOKE: ClassVar[dict] = {"width": 16, "layers": 1, "heads": 2}
    TRAIN: ClassVar[dict] = {"steps": 1500, "batch_size": 32, "lr": 1e-3, "eval_every": 100}

    def __init__(self, cfg: TransformerConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.start = self.levels
        self.tok = nn.Embedding(self.levels + 1, cfg.width)
        self.pos = nn.Parameter(0.02 * torch.randn(self.length, cfg.width))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.width, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers)
        )
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, self.levels)

    def window_logits(self, tokens: Tensor) -> Tensor:
        """Logits ``(B, K, L)`` of tokens ``(B, K)``, ``K <= D``."""
        k = tokens.shape[1]
        h = self.drop(self.tok(shift_right(tokens, self.start)) + self.pos[:k])
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))

    def logits(self, x: Tensor) -> Tensor:
        return self.window_logits(self.tokens(x))
