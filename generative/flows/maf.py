"""MAF and IAF models: stacks of MADE-based autoregressive layers with order reversals."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from torch import nn

from generative.flows.autoregressive import IAFLayer, MAFLayer
from generative.flows.bijection import Bijection, Flatten, FlowSequence, Reverse
from generative.flows.model import FlowConfig, FlowModel, check


@dataclasses.dataclass(frozen=True)
class MAFConfig(FlowConfig):
    """Sizes of MAF / IAF (defaults: the digits benchmark)."""

    layers: int = 5
    """Autoregressive layers; the feature order is reversed between them."""
    hidden: int = 256
    """Units per MADE hidden layer."""
    made_layers: int = 2
    """Hidden layers per MADE."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("layers", "hidden", "made_layers"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")


def autoregressive_flow(shape: tuple[int, ...], cfg: MAFConfig, layer: type) -> FlowSequence:
    """``(B, *shape) -> (B, D)``: flatten, then ``layer``s separated by order reversals."""
    dim = math.prod(shape)
    hidden = (cfg.hidden,) * cfg.made_layers
    layers: list[nn.Module] = [Flatten(shape)] if len(shape) > 1 else []
    for k in range(cfg.layers):
        if k:
            layers.append(Reverse())
        layers.append(layer(dim, hidden))
    return FlowSequence(layers, shape)


@dataclasses.dataclass(frozen=True)
class IAFConfig(MAFConfig):
    """IAF defaults: smaller than MAF's, since density evaluation (training) costs D passes."""

    layers: int = 4
    hidden: int = 128


class MAF(FlowModel):
    """Masked autoregressive flow (Papamakarios et al. 2017): fast density, ``D``-pass sampling."""

    Config = MAFConfig
    SMOKE: ClassVar[dict[str, Any]] = {"layers": 2, "hidden": 16, "made_layers": 1}
    BENCHMARKS = ("digits",)

    def build(self, cfg: MAFConfig, shape: tuple[int, ...]) -> Bijection:
        return autoregressive_flow(shape, cfg, MAFLayer)


class IAF(FlowModel):
    """Inverse autoregressive flow (Kingma et al. 2016) trained by maximum likelihood:
    one-pass sampling, ``D``-pass density evaluation (so training is slower than MAF)."""

    Config = IAFConfig
    SMOKE: ClassVar[dict[str, Any]] = {"layers": 2, "hidden": 16, "made_layers": 1}
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 1500}
    BENCHMARKS = ("digits",)

    def build(self, cfg: MAFConfig, shape: tuple[int, ...]) -> Bijection:
        return autoregressive_flow(shape, cfg, IAFLayer)
