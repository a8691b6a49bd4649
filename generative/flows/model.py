"""The flow family's :class:`GenerativeModel`: data handling, exact densities, sampling.

Continuous data (vectors) is modelled directly and ``log_prob`` is exact. Discrete images
with ``L`` levels are dequantised, ``y = (x + u) / L`` with ``u ~ U[0, 1)``, then mapped to
the real line by a logit transform; every step's log-det is counted, so

    log P(x) >= E_u[log p_flow(logit(y)) + log|d logit / dy|] - D log L,

and ``log_prob`` returns a one-draw estimate of this bound on the discrete data's
log-likelihood (its negative, divided by ``D log 2``, is the reported bits/dim).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Normal

from generative.base import DataSpec, GenerativeModel, check
from generative.data import DataError, dequantization_offset, dequantize
from generative.flows.bijection import Bijection
from generative.flows.logit import LogitTransform


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """Options shared by every flow."""

    logit_alpha: float = 0.05
    """Images only: squeeze dequantised values into [alpha, 1 - alpha] before the logit."""

    def __post_init__(self) -> None:
        check(0 < self.logit_alpha < 0.5, "logit_alpha", self.logit_alpha, "in (0, 0.5)")


class FlowModel(GenerativeModel):
    """Base of RealNVP, Glow, MAF and IAF; subclasses build ``self.flow`` in :meth:`build`.

    ``flow`` maps one (preprocessed) example ``(B, *spec.shape)`` to a flat latent
    ``(B, D)`` with a standard normal base distribution.
    """

    Config = FlowConfig

    def __init__(self, cfg: FlowConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        if spec.kind not in ("image", "vector"):
            raise DataError(f"{type(self).__name__} models images or vectors, not {spec.kind} data")
        self.logit = LogitTransform(cfg.logit_alpha) if spec.levels is not None else None
        self.flow = self.build(cfg, tuple(spec.shape))

    def build(self, cfg: Any, shape: tuple[int, ...]) -> Bijection:
        """The bijection ``(B, *shape) -> (B, D)``."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """``(B, *shape) -> (B,)`` nats: exact for continuous data, the dequantisation bound
        (one uniform draw) for discrete images."""
        log_det: Tensor | float = 0.0
        y = x
        if self.logit is not None:
            y, log_det = self.logit(dequantize(x, self.spec.levels))
            log_det = log_det - dequantization_offset(self.spec.levels, self.spec.dims)
        z, flow_log_det = self.flow(y)
        base = Normal(z.new_zeros(()), z.new_ones(())).log_prob(z).sum(1)
        return base + flow_log_det + log_det

    def loss(self, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Negative log-likelihood in nats per example; bits/dim for discrete data."""
        nll = -self.log_prob(batch).mean()
        metrics = {"nll": float(nll.detach())}
        if self.spec.levels is not None:
            metrics["bpd"] = metrics["nll"] / (self.spec.dims * math.log(2))
        return nll, metrics

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``(n, *shape)``: integer levels for discrete data, floats otherwise.

        ``temperature`` scales the base noise (``< 1`` trades diversity for quality).
        """
        device = next(self.parameters()).device
        z = torch.randn(n, self.spec.dims, device=device) * temperature
        y = self.flow.inverse(z)
        if self.logit is None:
            return y
        levels = self.spec.levels
        return torch.floor(self.logit.inverse(y) * levels).clamp(0, levels - 1).long()
