"""Gaussian log-likelihoods and divergences that make up the diffusion bound (in nats)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def normal_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """Elementwise ``KL(N(mean1, var1) || N(mean2, var2))``; arguments broadcast."""
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)


def gaussian_log_density(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """Elementwise ``log N(x; mean, var)``."""
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mean) ** 2 / var)


def _log_interval(lo: Tensor, hi: Tensor) -> Tensor:
    """``log(Phi(hi) - Phi(lo))`` for standardised bounds ``lo < hi``, stable in both tails.

    Above zero the interval is mirrored (``Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)``) so the
    subtraction always happens in the lower tail, where ``log_ndtr`` is accurate.
    """
    flip = lo > 0
    lo, hi = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log(-torch.expm1(torch.clamp(log_lo - log_hi, max=-1e-12)))


def discretized_gaussian_log_likelihood(
    x: Tensor, mean: Tensor, var: Tensor, levels: int
) -> Tensor:
    """Elementwise ``log P(x)`` of a Gaussian integrated over ``x``'s quantisation bin.

    ``x`` holds levels ``0 .. L-1`` scaled to ``[-1, 1]``; each bin has half-width
    ``1 / (L - 1)``, and the outermost bins extend to infinity so that the probabilities of
    the ``L`` values sum to one (the DDPM decoder).
    """
    half = 1.0 / (levels - 1)
    std = var.sqrt()
    lo = torch.where(x <= -1 + half / 2, torch.full_like(x, -math.inf), (x - half - mean) / std)
    hi = torch.where(x >= 1 - half / 2, torch.full_like(x, math.inf), (x + half - mean) / std)
    return _log_interval(lo, hi)
