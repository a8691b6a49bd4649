"""The logit transform that maps dequantised images from ``[0, 1)`` to the real line."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from generative.flows.bijection import Bijection


class LogitTransform(Bijection):
    """``w = logit(alpha + (1 - 2 alpha) y)`` elementwise, with its exact log-det.

    ``alpha`` keeps the logit away from the infinities at 0 and 1 (RealNVP's choice).
    ``log|dw/dy| = log(1 - 2 alpha) - log(s) - log(1 - s)`` with ``s = alpha + (1 - 2 alpha) y``.
    """

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * y
        w = torch.log(s) - torch.log1p(-s)
        log_det = math.log1p(-2 * self.alpha) - torch.log(s) - torch.log1p(-s)
        return w, log_det.flatten(1).sum(1)

    def inverse(self, w: Tensor) -> Tensor:
        return (torch.sigmoid(w) - self.alpha) / (1 - 2 * self.alpha)
