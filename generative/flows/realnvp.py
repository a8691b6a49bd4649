"""RealNVP: affine couplings with checkerboard and channel masks, multi-scale for images."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from torch import nn

from generative.data import DataError
from generative.flows.bijection import Bijection, FlowSequence, Split, Squeeze
from generative.flows.coupling import AffineCoupling, channel_mask, checkerboard_mask, half_mask
from generative.flows.model import FlowConfig, FlowModel, check
from generative.flows.nets import conv_conditioner, mlp_conditioner


@dataclasses.dataclass(frozen=True)
class RealNVPConfig(FlowConfig):
    """RealNVP sizes (defaults: the digits benchmark)."""

    hidden: int = 64
    """Conditioner width: channels of the conv nets (images), units of the MLPs (vectors)."""
    mlp_layers: int = 2
    """Vectors: hidden layers per conditioner MLP."""
    couplings: int = 8
    """Vectors: number of coupling layers (masks alternate halves)."""
    scales: int = 2
    """Images: number of scales; each but the last ends with squeeze, 3 channel-masked
    couplings and a split that factors out half the channels."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("hidden", "mlp_layers", "couplings", "scales"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")


def realnvp_vector(dim: int, cfg: RealNVPConfig) -> FlowSequence:
    """``(B, D) -> (B, D)``: ``cfg.couplings`` couplings with alternating half masks."""
    layers: list[nn.Module] = []
    for k in range(cfg.couplings):
        net = mlp_conditioner(dim, cfg.hidden, cfg.mlp_layers, 2 * dim)
        layers.append(AffineCoupling(half_mask(dim, k % 2), net))
    return FlowSequence(layers, (dim,))


def realnvp_image(shape: tuple[int, ...], cfg: RealNVPConfig) -> FlowSequence:
    """``(B, C, H, W) -> (B, C*H*W)``: per scale 3 checkerboard couplings, squeeze,
    3 channel couplings, split; the last scale has 4 checkerboard couplings."""
    _, h, w = shape
    side = 2 ** (cfg.scales - 1)
    if h % side or w % side:
        raise DataError(f"scales={cfg.scales} needs image sides divisible by {side}, got {h}x{w}")
    layers: list[nn.Module] = []
    cur = shape

    def coupling(mask) -> AffineCoupling:
        return AffineCoupling(mask, conv_conditioner(cur[0], cfg.hidden, 2 * cur[0]))

    for scale in range(cfg.scales):
        last = scale == cfg.scales - 1
        layers += [coupling(checkerboard_mask(cur, k % 2)) for k in range(4 if last else 3)]
        if last:
            break
        layers.append(Squeeze())
        cur = Squeeze().out_shape(cur)
        layers += [coupling(channel_mask(cur, k % 2)) for k in range(3)]
        layers.append(Split())
        cur = Split().kept(cur)
    return FlowSequence(layers, shape)


class RealNVP(FlowModel):
    """RealNVP (Dinh et al. 2017) for vectors and images; exact ``log_prob`` and sampling."""

    Config = RealNVPConfig
    SMOKE: ClassVar[dict[str, Any]] = {"hidden": 8, "couplings": 2, "scales": 1}
    BENCHMARKS = ("digits",)

    def build(self, cfg: RealNVPConfig, shape: tuple[int, ...]) -> Bijection:
        if len(shape) == 1:
            return realnvp_vector(shape[0], cfg)
        return realnvp_image(shape, cfg)
