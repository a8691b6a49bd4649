"""The categorical VAE: ``N`` latent variables of ``K`` categories, trained with Gumbel-softmax.

``q(z | x) = prod_n Cat(z_n; softmax(logits_n(x)))`` and a uniform prior
``p(z_n) = 1/K``. Training decodes relaxed one-hot draws (the Gumbel-softmax, optionally
straight-through hard), with a temperature annealed from ``temperature`` to
``temperature_min``; the KL to the uniform prior is analytic. Evaluation decodes exact
one-hot draws, so :meth:`elbo` and :meth:`log_prob` are estimates of the discrete model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import distributions as D

from generative.base import DataSpec
from generative.vae.base import VAEBase, VAEOptions, check


@dataclasses.dataclass(frozen=True)
class GumbelVAEConfig(VAEOptions):
    """A VAE with categorical latents relaxed by Gumbel-softmax during training."""

    latents: int = 16
    """Number N of categorical latent variables."""
    categories: int = 10
    """Categories K of each latent variable."""
    temperature: float = 1.0
    """Initial Gumbel-softmax temperature."""
    temperature_min: float = 0.5
    """Floor of the annealed temperature."""
    anneal_rate: float = 3e-4
    """Temperature decay per update: max(min, temperature * exp(-rate * updates))."""
    hard: bool = False
    """Straight-through: decode one-hot draws, back-propagate through the relaxed ones."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.latents >= 1, "latents", self.latents, ">= 1")
        check(self.categories >= 2, "categories", self.categories, ">= 2")
        check(self.temperature > 0, "temperature", self.temperature, "> 0")
        check(
            0 < self.temperature_min <= self.temperature,
            "temperature_min",
            self.temperature_min,
            "in (0, temperature]",
        )
        check(self.anneal_rate >= 0, "anneal_rate", self.anneal_rate, ">= 0")


class GumbelVAE(VAEBase):
    """Categorical VAE. Data ``(B, *spec.shape)``; latents one-hot ``(B, N, K)``."""

    Config = GumbelVAEConfig
    SMOKE: ClassVar[dict[str, Any]] = {
        "hidden": (16,),
        "channels": (4,),
        "latents": 2,
        "categories": 3,
    }
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 3000, "batch_size": 64, "lr": 1e-3}

    def __init__(self, cfg: GumbelVAEConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.encoder = self.make_encoder(cfg.latents * cfg.categories)
        self.decoder = self.make_decoder(cfg.latents * cfg.categories)
        # Counts training updates so the annealed temperature survives checkpoints.
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def current_temperature(self) -> float:
        cfg = self.cfg
        t = cfg.temperature * math.exp(-cfg.anneal_rate * int(self.updates))
        return max(cfg.temperature_min, t)

    def posterior_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised log-probabilities of ``q(z | x)``: ``(B, N, K)``."""
        logits = self.encoder(self.encoder_input(x)).view(-1, self.cfg.latents, self.cfg.categories)
        return logits.log_softmax(-1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """One-hot or relaxed latents ``(B, N, K)`` to likelihood parameters ``(B, P, *shape)``."""
        return self.decoder(z.flatten(1))

    def kl(self, log_q: torch.Tensor) -> torch.Tensor:
        """``(B,)`` KL(q || uniform) from log-probabilities ``(B, N, K)``: exact."""
        neg_entropy = (log_q.exp() * log_q).sum((-2, -1))
        return neg_entropy + self.cfg.latents * math.log(self.cfg.categories)

    def _one_hot_draws(self, log_q: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``(S, B, N, K)`` exact one-hot draws from ``q``."""
        idx = D.Categorical(logits=log_q).sample((num_samples,))
        return F.one_hot(idx, self.cfg.categories).to(log_q.dtype)

    def _log_px(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``(S, B)`` ``log p(x | z)`` for latents ``z`` ``(S, B, N, K)``."""
        s, b = z.shape[:2]
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        return self.likelihood.log_prob(self.decode(z.flatten(0, 1)), xs).view(s, b)

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative relaxed ELBO per example (nats), averaged over ``batch`` ``(B, ...)``."""
        log_q = self.posterior_logits(batch)
        tau = self.current_temperature
        relaxed = D.RelaxedOneHotCategorical(torch.tensor(tau), logits=log_q).rsample()
        if self.cfg.hard:
            hard = F.one_hot(relaxed.argmax(-1), self.cfg.categories).to(relaxed.dtype)
            relaxed = hard + relaxed - relaxed.detach()
        log_px = self._log_px(relaxed.unsqueeze(0), batch)[0]
        kl = self.kl(log_q)
        if self.training:
            self.updates += 1
        metrics = {
            "recon": float(-log_px.detach().mean()),
            "kl": float(kl.detach().mean()),
            "temperature": tau,
        }
        return -(log_px - kl).mean(), metrics

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` ELBO with the exact KL and ``log p(x | z)`` at one exact draw ``z ~ q``."""
        log_q = self.posterior_logits(x)
        return self._log_px(self._one_hot_draws(log_q, 1), x)[0] - self.kl(log_q)

    def log_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        log_q = self.posterior_logits(x)
        z = self._one_hot_draws(log_q, num_samples)
        log_qz = (z * log_q).sum((-2, -1))
        log_pz = -self.cfg.latents * math.log(self.cfg.categories)
        return self._log_px(z, x) + log_pz - log_qz

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``(n, *shape)``: ``z`` from the uniform prior, then ``p(x | z)`` at ``temperature``."""
        device = self.updates.device
        idx = torch.randint(0, self.cfg.categories, (n, self.cfg.latents), device=device)
        z = F.one_hot(idx, self.cfg.categories).float()
        return self.likelihood.sample(self.decode(z), temperature)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *shape)`` in the data's format: the decoded mean at the most probable ``z``."""
        z = F.one_hot(self.posterior_logits(x).argmax(-1), self.cfg.categories).float()
        return self.to_data(self.likelihood.mean(self.decode(z)))

    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dims: int = 8) -> torch.Tensor:
        """Latent traversals as images in [0, 1]: ``(R, K, C, H, W)``, one row per latent.

        Starting at the most probable ``z`` of ``x[0]``, each row sets one latent variable
        to each of its ``K`` categories in turn; rows are the ``min(dims, N)`` variables
        whose posteriors vary most across ``x`` ``(B, ...)``.
        """
        probs = self.posterior_logits(x).exp()  # (B, N, K)
        n, k = self.cfg.latents, self.cfg.categories
        device = probs.device
        rows = min(dims, n)
        if probs.shape[0] > 1:
            order = probs.var(0).sum(-1).argsort(descending=True)[:rows]
        else:
            order = torch.arange(rows, device=device)
        z = F.one_hot(probs[0].argmax(-1), k).float().repeat(rows, k, 1, 1)  # (R, K, N, K)
        row, col = torch.arange(rows, device=device), torch.arange(k, device=device)
        z[row[:, None], col, order[:, None]] = torch.eye(k, device=device)
        return self.grid_images(z)

    @torch.no_grad()
    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int = 9) -> torch.Tensor:
        """Paths between posterior probabilities, decoded, as images: ``(B, steps, C, H, W)``.

        Row ``i`` mixes the posterior probabilities of ``start[i]`` and ``end[i]``.
        """
        a, b = self.posterior_logits(start).exp(), self.posterior_logits(end).exp()
        t = torch.linspace(0, 1, steps, device=a.device).view(1, steps, 1, 1)
        z = a.unsqueeze(1) * (1 - t) + b.unsqueeze(1) * t
        return self.grid_images(z)
