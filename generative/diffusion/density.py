"""A vector diffusion model as a plain density module: fit from examples, a bound on log p."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from generative.base import DataSpec
from generative.density import fit_density
from generative.diffusion.ddpm import DDPM, DDPMConfig


class DiffusionDensity(nn.Module):
    """A diffusion model over vectors ``(B, D)`` whose ``log_prob`` is the variational bound.

    ``options`` are :class:`DDPMConfig` fields; the defaults here are sized for latent
    vectors (``timesteps=100``, all bound terms, the fixed variance ``beta_t``, the simple
    loss and no weight average, ``ema=0``, since a VAE prior trains through ``log_prob``).
    ``standardize`` fits a fixed affine normalisation to the first training batch (counted
    in the density); leave it off when the data moves during training (a VAE's latents).
    """

    def __init__(self, dim: int, standardize: bool = True, **options: Any):
        super().__init__()
        options = {
            "timesteps": 100,
            "variance": "large",
            "vlb_weight": 0.0,
            "bound_steps": 0,
            "sampler": "ddim",
            "sample_steps": 50,
            "ema": 0.0,
            **options,
        }
        self.dim = dim
        self.model = DDPM(
            DDPMConfig(**options), DataSpec("vector", (dim,)), standardize=standardize
        )

    def log_prob(self, x: Tensor) -> Tensor:
        """``(B, D) -> (B,)`` a lower bound on ``log p(x)`` in nats (``bound_steps + 1``
        denoiser calls, all ``T`` by default)."""
        return self.model.log_prob(x)

    def log_prob_estimate(self, x: Tensor, steps: int = 4) -> Tensor:
        """``(B,)`` an unbiased, differentiable estimate of :meth:`log_prob` from ``steps``
        stratified KL terms (plus the prior and decoder terms): ``steps + 1`` calls."""
        return self.model.log_prob(x, bound_steps=steps)

    def log_weight(self, x: Tensor) -> Tensor:
        """``(B,)`` a one-trajectory estimate of :meth:`log_prob` whose exponential is an
        unbiased estimate of ``p(x)``: use it inside importance-weighted averages."""
        return self.model.log_prob_trajectory(x)

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``(n, D)`` draws with the configured sampler (DDIM, 50 steps by default)."""
        return self.model.sample(n, temperature)

    def fit(
        self, examples: Tensor, steps: int = 2000, batch_size: int = 256, lr: float = 1e-3
    ) -> list[float]:
        """Train the denoiser on ``examples (N, D)``; returns the per-step training loss."""
        return fit_density(self.model, examples, steps, batch_size, lr)
