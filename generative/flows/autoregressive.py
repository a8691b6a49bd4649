"""Masked autoregressive flow (MAF) and inverse autoregressive flow (IAF) layers on MADE.

Both use the affine map ``x_i = z_i * exp(alpha_i) + mu_i``. MAF conditions on data
(``mu, alpha = MADE(x)``): density evaluation is one pass, sampling ``D`` passes. IAF
conditions on noise (``mu, alpha = MADE(z)``): sampling is one pass, density evaluation
``D`` passes. Either way ``log|det dz/dx| = -sum(alpha)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from generative.flows.bijection import Bijection
from generative.flows.made import MADE

# Bound on |alpha| per layer: a scale of at most e^3 per layer keeps training stable.
ALPHA_LIMIT = 3.0


def _mu_alpha(made: MADE, x: Tensor) -> tuple[Tensor, Tensor]:
    mu, raw = made(x).unbind(1)
    return mu, ALPHA_LIMIT * torch.tanh(raw / ALPHA_LIMIT)


def _solve_sequentially(made: MADE, given: Tensor, data_to_noise: bool) -> Tensor:
    """Fill the unknown side of ``x = z * exp(alpha) + mu`` one feature at a time.

    Adding one-hot columns (instead of writing in place) keeps the graph differentiable.
    """
    out = torch.zeros_like(given)
    eye = torch.eye(given.shape[1], dtype=given.dtype, device=given.device)
    for i in range(given.shape[1]):
        mu, alpha = _mu_alpha(made, out)
        if data_to_noise:
            value = (given[:, i] - mu[:, i]) * torch.exp(-alpha[:, i])
        else:
            value = given[:, i] * torch.exp(alpha[:, i]) + mu[:, i]
        out = out + value[:, None] * eye[i]
    return out


class MAFLayer(Bijection):
    """``(B, D)``: density in one MADE pass, sampling in ``D`` passes."""

    def __init__(self, dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.made = MADE(dim, hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, alpha = _mu_alpha(self.made, x)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(1)

    def inverse(self, z: Tensor) -> Tensor:
        return _solve_sequentially(self.made, z, data_to_noise=False)


class IAFLayer(Bijection):
    """``(B, D)``: sampling in one MADE pass, density in ``D`` passes."""

    def __init__(self, dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.made = MADE(dim, hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = _solve_sequentially(self.made, x, data_to_noise=True)
        _, alpha = _mu_alpha(self.made, z)
        return z, -alpha.sum(1)

    def inverse(self, z: Tensor) -> Tensor:
        mu, alpha = _mu_alpha(self.made, z)
        return z * torch.exp(alpha) + mu
