"""Priors ``p(z)`` over a VAE's continuous latent vector, behind one small interface.

A prior is an ``nn.Module`` with ``log_prob(z: (B, D)) -> (B,)`` and
``sample(n) -> (n, D)``, built as ``cls(ctx)`` from a :class:`PriorContext`. ``PRIORS``
maps a name to its class as a lazy ``"module:attr"`` string, so other families (flows,
diffusion) can add priors without this module importing them.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable

import torch
from torch import distributions as D
from torch import nn

PRIORS: dict[str, str] = {
    "standard": "generative.vae.priors:StandardNormal",
    "mog": "generative.vae.priors:MixtureOfGaussians",
    "vamp": "generative.vae.priors:VampPrior",
    "flow": "generative.flows.prior:FlowPrior",
    "diffusion": "generative.diffusion.prior:DiffusionPrior",
}


@dataclasses.dataclass(frozen=True)
class PriorContext:
    """Everything a prior may need from the VAE that owns it.

    dim: latent size ``D``.
    components: mixture components (``mog``) or pseudo-inputs (``vamp``).
    hidden: hidden width of network priors (flows, diffusion).
    layers: depth of network priors (flow layers, denoiser blocks).
    input_shape: the shape of one encoder input (the VampPrior learns inputs of it).
    posterior: the encoder as a function of inputs ``(K, *input_shape)`` to a
        ``Normal`` with batch shape ``(K, D)``; ``None`` when the VAE has no Gaussian
        posterior.
    """

    dim: int
    components: int = 16
    hidden: int = 64
    layers: int = 4
    input_shape: tuple[int, ...] = ()
    posterior: Callable[[torch.Tensor], D.Normal] | None = None


class Prior(nn.Module):
    """``p(z)`` over ``(B, D)`` latents; subclasses set :meth:`log_prob` and :meth:`sample`."""

    def __init__(self, ctx: PriorContext):
        super().__init__()
        self.dim = ctx.dim
        # Carries the module's device and dtype for sampling from parameter-free priors.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B,)`` log-density."""
        raise NotImplementedError

    def sample(self, n: int) -> torch.Tensor:
        """``(n, D)`` draws."""
        raise NotImplementedError

    def kl(self, q: D.Normal, z: torch.Tensor) -> torch.Tensor:
        """``(B,)`` estimate of KL(q || p) from the draws ``z`` ``(B, D)`` of ``q`` ``(B, D)``.

        The one-sample estimate ``log q(z) - log p(z)``; priors with a closed form
        override it.
        """
        return q.log_prob(z).sum(-1) - self.log_prob(z)


class StandardNormal(Prior):
    """``N(0, I)``: the classic VAE prior, with the closed-form KL."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z.pow(2).sum(-1) + self.dim * math.log(2 * math.pi))

    def sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.dim, device=self._anchor.device, dtype=self._anchor.dtype)

    def kl(self, q: D.Normal, z: torch.Tensor) -> torch.Tensor:
        return D.kl_divergence(q, D.Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))).sum(
            -1
        )


class MixtureOfGaussians(Prior):
    """A learned mixture of ``components`` diagonal Gaussians."""

    def __init__(self, ctx: PriorContext):
        super().__init__(ctx)
        k = ctx.components
        # Spread the means so the components start distinct; unit scales like N(0, I).
        self.loc = nn.Parameter(torch.randn(k, ctx.dim))
        self.log_scale = nn.Parameter(torch.zeros(k, ctx.dim))
        self.logits = nn.Parameter(torch.zeros(k))

    def distribution(self) -> D.MixtureSameFamily:
        components = D.Independent(D.Normal(self.loc, self.log_scale.exp()), 1)
        return D.MixtureSameFamily(D.Categorical(logits=self.logits), components)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.distribution().log_prob(z)

    def sample(self, n: int) -> torch.Tensor:
        return self.distribution().sample((n,))


class VampPrior(Prior):
    """The VampPrior: the mean of the posteriors of ``components`` learned pseudo-inputs.

    ``p(z) = 1/K sum_k q(z | u_k)``; the pseudo-inputs ``u_k`` live in the encoder's input
    space and are trained with everything else.
    """

    def __init__(self, ctx: PriorContext):
        super().__init__(ctx)
        if ctx.posterior is None:
            raise ValueError("prior='vamp' needs a VAE with a Gaussian posterior (an encoder)")
        self._posterior = ctx.posterior
        # Encoder inputs of discrete data lie in [0, 1]: start the pseudo-inputs mid-range.
        self.pseudo_inputs = nn.Parameter(
            0.5 + 0.05 * torch.randn(ctx.components, *ctx.input_shape)
        )

    def components(self) -> D.Normal:
        """The posteriors of the pseudo-inputs, batch shape ``(K, D)``."""
        return self._posterior(self.pseudo_inputs)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        q = self.components()
        per_component = D.Normal(q.loc, q.scale).log_prob(z.unsqueeze(-2)).sum(-1)  # (B, K)
        return torch.logsumexp(per_component, dim=-1) - math.log(q.loc.shape[0])

    def sample(self, n: int) -> torch.Tensor:
        q = self.components()
        k = torch.randint(0, q.loc.shape[0], (n,), device=q.loc.device)
        return D.Normal(q.loc[k], q.scale[k]).sample()


def build_prior(name: str, ctx: PriorContext) -> Prior:
    """Import and build the prior registered as ``name`` in :data:`PRIORS`."""
    if name not in PRIORS:
        raise ValueError(f"invalid prior={name!r}: must be one of {', '.join(PRIORS)}")
    module_name, _, attr = PRIORS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)(ctx)
