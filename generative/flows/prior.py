"""``--prior flow``: a RealNVP over the VAE's latent vector, trained with the ELBO."""

from __future__ import annotations

from torch import Tensor

from generative.flows.density import FlowDensity
from generative.vae.priors import Prior, PriorContext


class FlowPrior(Prior):
    """``p(z)`` = a RealNVP with ``ctx.layers`` couplings of width ``ctx.hidden``; exact
    ``log_prob``. It starts as ``N(0, I)`` (identity couplings)."""

    def __init__(self, ctx: PriorContext):
        super().__init__(ctx)
        self.density = FlowDensity(
            ctx.dim, "realnvp", hidden=ctx.hidden, couplings=max(2, ctx.layers)
        )

    def log_prob(self, z: Tensor) -> Tensor:
        return self.density.log_prob(z)

    def sample(self, n: int) -> Tensor:
        return self.density.sample(n)
