"""The VAE with a Gaussian posterior: plain, beta-VAE and IWAE objectives, any prior.

``q(z | x) = N(mu(x), diag sigma(x)^2)`` over ``D = latent_dim`` dimensions; the prior
comes from :mod:`generative.vae.priors` by name. Training maximises the ELBO
(``E_q log p(x | z) - beta KL(q || p)``, averaged over ``samples`` draws) or the IWAE
bound ``E log 1/k sum_k p(x, z_k) / q(z_k | x)`` with ``k = samples``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import distributions as D

from generative.base import DataSpec, check_choice
from generative.vae.base import VAEBase, VAEOptions, check
from generative.vae.priors import PRIORS, PriorContext, build_prior

OBJECTIVES = ("elbo", "iwae")


@dataclasses.dataclass(frozen=True)
class GaussianVAEConfig(VAEOptions):
    """A VAE with a Gaussian posterior; defaults reach the digits benchmark in minutes."""

    latent_dim: int = 16
    """Size D of the latent vector z."""
    objective: str = "elbo"
    """elbo | iwae: the bound that training maximises."""
    samples: int = 1
    """Posterior draws per example in the training objective (the k of IWAE)."""
    beta: float = 1.0
    """Weight of the KL term in the ELBO (beta-VAE when > 1); must be 1 with iwae."""
    prior: str = "standard"
    """Name of the prior p(z) in generative.vae.priors.PRIORS (standard, mog, vamp, ...)."""
    prior_components: int = 16
    """Mixture components (mog) or pseudo-inputs (vamp)."""
    prior_hidden: int = 64
    """Hidden width of network priors (flow, diffusion)."""
    prior_layers: int = 4
    """Depth of network priors (flow, diffusion)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.latent_dim >= 1, "latent_dim", self.latent_dim, ">= 1")
        check(self.objective in OBJECTIVES, "objective", self.objective, "elbo or iwae")
        check(self.samples >= 1, "samples", self.samples, ">= 1")
        check(self.beta >= 0, "beta", self.beta, ">= 0")
        check(
            self.objective == "elbo" or self.beta == 1.0,
            "beta",
            self.beta,
            "1.0 with objective=iwae (the IWAE bound has no KL weight)",
        )
        check_choice("prior", self.prior, PRIORS)
        check(self.prior_components >= 1, "prior_components", self.prior_components, ">= 1")
        check(self.prior_hidden >= 1, "prior_hidden", self.prior_hidden, ">= 1")
        check(self.prior_layers >= 1, "prior_layers", self.prior_layers, ">= 1")


SMOKE_SIZES = {"hidden": (16,), "channels": (4,), "latent_dim": 2, "prior_components": 2}


class GaussianVAE(VAEBase):
    """VAE with ``q(z | x)`` diagonal Gaussian. Data ``(B, *spec.shape)``, latents ``(B, D)``."""

    Config = GaussianVAEConfig
    SMOKE: ClassVar[dict[str, Any]] = SMOKE_SIZES
    # Digits: the best validation ELBO comes after 1,000-2,500 steps (the trainer keeps
    # the best weights), a few seconds for the MLP and about a minute for the conv nets.
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 3000, "batch_size": 64, "lr": 1e-3}

    def __init__(self, cfg: GaussianVAEConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.encoder = self.make_encoder(2 * cfg.latent_dim)
        self.decoder = self.make_decoder(cfg.latent_dim)
        ctx = PriorContext(
            dim=cfg.latent_dim,
            components=cfg.prior_components,
            hidden=cfg.prior_hidden,
            layers=cfg.prior_layers,
            input_shape=tuple(spec.shape),
            posterior=self.posterior_of_inputs,
        )
        self.prior = build_prior(cfg.prior, ctx)

    # -- distributions --------------------------------------------------------------------
    def posterior_of_inputs(self, inputs: torch.Tensor) -> D.Normal:
        """``q(z | x)`` from encoder inputs ``(B, *shape)`` (floats); batch shape ``(B, D)``."""
        loc, raw_scale = self.encoder(inputs).chunk(2, dim=-1)
        return D.Normal(loc, F.softplus(raw_scale) + 1e-4)

    def posterior(self, x: torch.Tensor) -> D.Normal:
        """``q(z | x)`` for data ``x`` ``(B, *shape)``; batch shape ``(B, D)``."""
        return self.posterior_of_inputs(self.encoder_input(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D)`` to likelihood parameters ``(B, P, *shape)``."""
        return self.decoder(z)

    def _log_px(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x | z)`` for draws ``z`` ``(S, B, D)`` of data ``x`` ``(B, ...)``: ``(S, B)``."""
        s, b = z.shape[:2]
        params = self.decode(z.reshape(s * b, -1))
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        return self.likelihood.log_prob(params, xs).view(s, b)

    # -- objectives -----------------------------------------------------------------------
    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative training bound per example (nats), averaged over ``batch`` ``(B, ...)``."""
        cfg = self.cfg
        q = self.posterior(batch)
        z = q.rsample((cfg.samples,))  # (S, B, D)
        log_px = self._log_px(z, batch)
        kl = self._kl(q, z)
        metrics = {
            "recon": float(-log_px.detach().mean()),
            "kl": float(kl.detach().mean()),
            "neg_elbo": float((kl - log_px).detach().mean()),
        }
        if cfg.objective == "elbo":
            return (cfg.beta * kl - log_px).mean(), metrics
        log_pz = self.prior.log_prob(z.flatten(0, 1)).view_as(log_px)
        log_w = log_px + log_pz - q.log_prob(z).sum(-1)
        bound = torch.logsumexp(log_w, 0) - math.log(cfg.samples)
        metrics["neg_iwae"] = float(-bound.detach().mean())
        return -bound.mean(), metrics

    def _kl(self, q: D.Normal, z: torch.Tensor) -> torch.Tensor:
        """``(S, B)`` KL(q || p) at draws ``z`` ``(S, B, D)`` of ``q`` (closed form if known)."""
        s = z.shape[0]
        repeated = D.Normal(q.loc.repeat(s, 1), q.scale.repeat(s, 1))  # rows match z.flatten
        return self.prior.kl(repeated, z.flatten(0, 1)).view(s, -1)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` one-draw ELBO ``log p(x | z) - KL(q || p)`` (closed-form KL where known)."""
        q = self.posterior(x)
        z = q.rsample((1,))
        return (self._log_px(z, x) - self._kl(q, z))[0]

    def log_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        q = self.posterior(x)
        z = q.sample((num_samples,))
        log_pz = self.prior.log_prob(z.flatten(0, 1)).view(num_samples, -1)
        return self._log_px(z, x) + log_pz - q.log_prob(z).sum(-1)

    # -- generation -----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``(n, *shape)`` draws: ``z`` from the prior, then ``p(x | z)`` at ``temperature``."""
        return self.likelihood.sample(self.decode(self.prior.sample(n)), temperature)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *shape)`` in the data's format: the decoded mean at the posterior mean of ``x``."""
        return self.to_data(self.likelihood.mean(self.decode(self.posterior(x).loc)))

    @torch.no_grad()
    def traverse(
        self, x: torch.Tensor, steps: int = 9, dims: int = 8, span: float = 3.0
    ) -> torch.Tensor:
        """Latent traversals as images in [0, 1]: ``(R, steps, C, H, W)``, one row per latent.

        Starting at the posterior mean of ``x[0]``, each row sweeps one latent dimension
        over ``[-span, span]`` in ``steps`` steps. Rows are the ``min(dims, D)`` dimensions
        whose posterior means vary most across ``x`` ``(B, ...)`` (the active units).
        """
        loc = self.posterior(x).loc
        rows = min(dims, self.cfg.latent_dim)
        device = loc.device
        if loc.shape[0] > 1:
            order = loc.var(0).argsort(descending=True)[:rows]
        else:
            order = torch.arange(rows, device=device)
        values = torch.linspace(-span, span, steps, device=device)
        z = loc[0].repeat(rows, steps, 1)  # (R, steps, D)
        row, col = torch.arange(rows, device=device), torch.arange(steps, device=device)
        z[row[:, None], col, order[:, None]] = values
        return self.grid_images(z)

    @torch.no_grad()
    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int = 9) -> torch.Tensor:
        """Linear paths between posterior means, as images in [0, 1]: ``(B, steps, C, H, W)``.

        Row ``i`` goes from ``start[i]`` to ``end[i]`` (both ``(B, ...)``) in ``steps`` steps.
        """
        a, b = self.posterior(start).loc, self.posterior(end).loc
        t = torch.linspace(0, 1, steps, device=a.device).view(1, steps, 1)
        z = a.unsqueeze(1) * (1 - t) + b.unsqueeze(1) * t
        return self.grid_images(z)


@dataclasses.dataclass(frozen=True)
class ConvVAEConfig(GaussianVAEConfig):
    """The Gaussian VAE with convolutional encoder and decoder."""

    net: str = "conv"


class ConvVAE(GaussianVAE):
    Config = ConvVAEConfig


@dataclasses.dataclass(frozen=True)
class BetaVAEConfig(GaussianVAEConfig):
    """beta-VAE: the KL term weighted by beta > 1 for more disentangled latents."""

    beta: float = 4.0


class BetaVAE(GaussianVAE):
    Config = BetaVAEConfig


@dataclasses.dataclass(frozen=True)
class IWAEConfig(GaussianVAEConfig):
    """IWAE: trained on the importance-weighted bound with k = samples draws."""

    objective: str = "iwae"
    samples: int = 8


class IWAE(GaussianVAE):
    Config = IWAEConfig
