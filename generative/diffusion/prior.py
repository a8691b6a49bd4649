"""``--prior diffusion``: a diffusion model over the VAE's latent vector, trained with the ELBO."""

from __future__ import annotations

from torch import Tensor

from generative.diffusion.density import DiffusionDensity
from generative.vae.priors import Prior, PriorContext

# KL terms drawn (stratified) per training step: the estimate stays unbiased, this only
# trades its variance against denoiser calls.
TRAIN_BOUND_STEPS = 4


class DiffusionPrior(Prior):
    """``p(z)`` = DDPM (T = 100, cosine, MLP of ``ctx.layers`` blocks of width ``ctx.hidden``).

    ``log_prob`` estimates the variational lower bound on ``log p(z)`` without bias, so the
    VAE's ELBO stays a lower bound. Training mode: the stratified per-step form (5 denoiser
    calls, low variance, differentiable). Eval mode: one whole forward trajectory (T calls),
    whose exponential is an unbiased estimate of ``p(z)``, so the VAE's importance-sampled
    log-likelihood with this prior is still a valid stochastic lower bound.
    """

    def __init__(self, ctx: PriorContext):
        super().__init__(ctx)
        self.density = DiffusionDensity(
            ctx.dim, standardize=False, hidden=ctx.hidden, blocks=max(1, ctx.layers // 2)
        )

    def log_prob(self, z: Tensor) -> Tensor:
        if self.training:
            return self.density.log_prob_estimate(z, TRAIN_BOUND_STEPS)
        return self.density.log_weight(z)

    def sample(self, n: int) -> Tensor:
        return self.density.sample(n)
