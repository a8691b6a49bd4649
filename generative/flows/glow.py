"""Glow: steps of ActNorm, invertible 1x1 convolution (LU) and affine coupling."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from torch import nn

from generative.data import DataError
from generative.flows.actnorm import ActNorm
from generative.flows.bijection import Bijection, FlowSequence, Split, Squeeze
from generative.flows.coupling import AffineCoupling, channel_mask, half_mask
from generative.flows.invconv import InvertibleConv1x1
from generative.flows.model import FlowConfig, FlowModel, check
from generative.flows.nets import conv_conditioner, mlp_conditioner


@dataclasses.dataclass(frozen=True)
class GlowConfig(FlowConfig):
    """Glow sizes (defaults: the digits benchmark)."""

    hidden: int = 64
    """Conditioner width: channels of the conv nets (images), units of the MLPs (vectors)."""
    mlp_layers: int = 2
    """Vectors: hidden layers per conditioner MLP."""
    steps: int = 8
    """Flow steps per level (images) or in total (vectors)."""
    levels: int = 2
    """Images: levels, each ``squeeze, steps, split`` (no split after the last)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "mlp_layers", "steps", "levels"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")


def glow_step(shape: tuple[int, ...], cfg: GlowConfig) -> list[nn.Module]:
    """ActNorm, 1x1 convolution (linear map on vectors) and a coupling on the first half."""
    c = shape[0]
    if len(shape) == 1:
        net = mlp_conditioner(c, cfg.hidden, cfg.mlp_layers, 2 * c)
        coupling = AffineCoupling(half_mask(c, 0), net)
    else:
        coupling = AffineCoupling(channel_mask(shape, 0), conv_conditioner(c, cfg.hidden, 2 * c))
    return [ActNorm(c), InvertibleConv1x1(c), coupling]


def glow_vector(dim: int, cfg: GlowConfig) -> FlowSequence:
    """``(B, D) -> (B, D)``: ``cfg.steps`` Glow steps."""
    return FlowSequence([m for _ in range(cfg.steps) for m in glow_step((dim,), cfg)], (dim,))


def glow_image(shape: tuple[int, ...], cfg: GlowConfig) -> FlowSequence:
    """``(B, C, H, W) -> (B, C*H*W)``: per level squeeze, ``cfg.steps`` steps, split."""
    _, h, w = shape
    side = 2**cfg.levels
    if h % side or w % side:
        raise DataError(f"levels={cfg.levels} needs image sides divisible by {side}, got {h}x{w}")
    layers: list[nn.Module] = []
    cur = shape
    for level in range(cfg.levels):
        layers.append(Squeeze())
        cur = Squeeze().out_shape(cur)
        for _ in range(cfg.steps):
            layers += glow_step(cur, cfg)
        if level < cfg.levels - 1:
            layers.append(Split())
            cur = Split().kept(cur)
    return FlowSequence(layers, shape)


class Glow(FlowModel):
    """Glow (Kingma & Dhariwal 2018) for vectors and images; exact ``log_prob`` and sampling."""

    Config = GlowConfig
    SMOKE: ClassVar[dict[str, Any]] = {"hidden": 8, "steps": 2, "levels": 1}
    BENCHMARKS = ("digits",)

    def build(self, cfg: GlowConfig, shape: tuple[int, ...]) -> Bijection:
        if len(shape) == 1:
            return glow_vector(shape[0], cfg)
        return glow_image(shape, cfg)
