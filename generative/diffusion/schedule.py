"""Noise schedules and the closed forms of the forward process.

Indices are 0-based: ``t = 0 .. T-1`` stands for the paper's ``1 .. T``, so ``x_t`` with
``t = 0`` is the first noisy step and ``alpha_bar_prev[0] = 1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SCHEDULES = ("linear", "cosine")


def linear_betas(timesteps: int, max_beta: float = 0.999) -> Tensor:
    """DDPM's linear ``beta`` from 1e-4 to 0.02 for 1000 steps, rescaled for ``timesteps``
    so that the total noise stays comparable (Nichol & Dhariwal 2021); below 50 steps the
    rescaled betas pass 1, so they are clipped at ``max_beta``."""
    scale = 1000 / timesteps
    betas = torch.linspace(1e-4 * scale, 0.02 * scale, timesteps, dtype=torch.float64)
    return betas.clamp(max=max_beta)


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> Tensor:
    """``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos^2((t / T + s) / (1 + s) * pi / 2)``,
    for ``t = 0 .. T`` (``T + 1`` values, the first is 1)."""
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def cosine_betas(timesteps: int, max_beta: float = 0.999) -> Tensor:
    """Betas of the cosine schedule, clipped at ``max_beta`` to avoid a singular last step."""
    alpha_bar = cosine_alpha_bar(timesteps)
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


class NoiseSchedule(nn.Module):
    """The ``(T,)`` schedule tensors and the Gaussians they define.

    ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``;
    ``q(x_{t-1} | x_t, x_0) = N(coef_x0_t x_0 + coef_xt_t x_t, posterior_var_t I)``.
    """

    def __init__(self, kind: str, timesteps: int):
        super().__init__()
        if kind not in SCHEDULES:
            raise ValueError(f"invalid schedule={kind!r}: must be one of {', '.join(SCHEDULES)}")
        betas = linear_betas(timesteps) if kind == "linear" else cosine_betas(timesteps)
        alphas = 1 - betas
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        posterior_var = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
        tensors = {
            "betas": betas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "posterior_var": posterior_var,
            "coef_x0": betas * alpha_bar_prev.sqrt() / (1 - alpha_bar),
            "coef_xt": (1 - alpha_bar_prev) * alphas.sqrt() / (1 - alpha_bar),
        }
        for name, value in tensors.items():
            self.register_buffer(name, value.float(), persistent=False)
        self.kind, self.timesteps = kind, timesteps

    @staticmethod
    def gather(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``values[t]`` shaped ``(B, 1, ..., 1)`` to broadcast against ``like`` ``(B, ...)``."""
        return values[t].view(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """A draw of ``x_t ~ q(x_t | x_0)``; ``x0, noise (B, ...)``, ``t (B,)``."""
        ab = self.gather(self.alpha_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def q_mean_var(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``(B, ...)`` and variance ``(B, 1, ...)`` of ``q(x_t | x_0)``."""
        ab = self.gather(self.alpha_bar, t, x0)
        return ab.sqrt() * x0, 1 - ab

    def posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``(B, ...)`` and variance ``(B, 1, ...)`` of ``q(x_{t-1} | x_t, x_0)``."""
        mean = self.gather(self.coef_x0, t, x0) * x0 + self.gather(self.coef_xt, t, xt) * xt
        return mean, self.gather(self.posterior_var, t, x0)
