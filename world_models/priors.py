"""Densities over latent states, fitted to examples: preferences as ``log p~(s)`` in latent space.

A :class:`LatentPrior` learns ``p~(s)`` over vectors ``(N, F)``, for instance the latent
states of encoded goal observations (:func:`goal_prior`), so a planner can score imagined
states by their log-density. Three families, the first two the generative families' own
density modules:

- ``flow``: :class:`generative.flows.density.FlowDensity` (RealNVP), an exact log-density;
- ``diffusion``: :class:`generative.diffusion.density.DiffusionDensity` (DDPM), whose
  ``log_prob`` is a Monte Carlo estimate of the variational lower bound (``T`` denoiser
  calls: a slower and noisier score than the flow's, and below the true log-density);
- ``gaussian``: a diagonal Gaussian fitted by moments, the baseline.

Examples are standardised by fixed statistics (saved as buffers, their log-determinant
counted, so densities stay in the units of ``s``) and jittered with small Gaussian noise
(copies of each example, at least :data:`MIN_FIT_EXAMPLES` in all): goal examples are
often few, and without it a flow collapses onto them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor, nn

from world_models.base import WorldModel, check, check_choice

KINDS = ("flow", "diffusion", "gaussian")
MIN_FIT_EXAMPLES = 4096


@dataclasses.dataclass(frozen=True)
class LatentPriorConfig:
    """A latent density and how it is fitted."""

    kind: str = "flow"
    """flow | diffusion | gaussian."""
    hidden: int = 64
    """Width of the flow's conditioners or of the denoiser MLP."""
    layers: int = 6
    """Coupling layers (flow) or residual blocks (diffusion)."""
    timesteps: int = 50
    """Diffusion steps T."""
    bound_steps: int = 0
    """KL terms per diffusion log-density estimate (0: all T - 1; fewer are cheaper but far
    noisier)."""
    steps: int = 1000
    """Optimisation steps of :meth:`LatentPrior.fit`."""
    batch_size: int = 256
    """Examples per optimisation step."""
    lr: float = 1e-3
    """Adam learning rate."""
    jitter: float = 0.05
    """Std of the noise added to standardised examples while fitting."""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        for name in ("hidden", "layers", "timesteps", "steps", "batch_size"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        check(self.timesteps >= 2, "timesteps", self.timesteps, ">= 2")
        check(self.bound_steps >= 0, "bound_steps", self.bound_steps, ">= 0")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.jitter >= 0, "jitter", self.jitter, ">= 0")


class LatentPrior(nn.Module):
    """``p~(s)`` over latent vectors ``(..., F)``: :meth:`fit`, :meth:`log_prob`, :meth:`sample`."""

    def __init__(self, cfg: LatentPriorConfig, dim: int):
        super().__init__()
        self.cfg = cfg
        self.dim = int(dim)
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.model: nn.Module | None = None
        if cfg.kind == "flow":
            from generative.flows.density import FlowDensity

            self.model = FlowDensity(self.dim, "realnvp", hidden=cfg.hidden, couplings=cfg.layers)
        elif cfg.kind == "diffusion":
            from generative.diffusion.density import DiffusionDensity

            # Standardisation is done here for every kind, so the density's own is off.
            self.model = DiffusionDensity(
                self.dim,
                standardize=False,
                timesteps=cfg.timesteps,
                bound_steps=cfg.bound_steps,
                hidden=cfg.hidden,
                blocks=cfg.layers,
                sample_steps=min(50, cfg.timesteps),
            )

    @property
    def device(self) -> torch.device:
        return self.shift.device

    def _standardize(self, s: Tensor) -> Tensor:
        return (s.to(self.device).float() - self.shift) / self.scale

    def fit(self, examples: Tensor, steps: int | None = None) -> dict[str, float]:
        """Fit to examples ``(N, F)`` (batches drawn with torch's global generator); returns
        the last training loss."""
        examples = examples.detach().to(self.device).float().reshape(-1, self.dim)
        self.shift.copy_(examples.mean(0))
        if examples.shape[0] > 1:
            # A floor: a handful of goal examples may not vary at all along some dimensions.
            self.scale.copy_(examples.std(0).clamp_min(1e-2))
        if self.model is None:
            return {}
        data = self._standardize(examples)
        if self.cfg.jitter > 0:
            copies = -(-MIN_FIT_EXAMPLES // data.shape[0])
            data = data.repeat(copies, 1)
            data = data + self.cfg.jitter * torch.randn_like(data)
        losses = self.model.fit(
            data, steps or self.cfg.steps, min(self.cfg.batch_size, data.shape[0]), self.cfg.lr
        )
        return {"prior/loss": losses[-1]}

    def log_prob(self, s: Tensor) -> Tensor:
        """``(..., F) -> (...)`` log-density in the units of ``s`` (diffusion: a bound)."""
        batch = s.shape[:-1]
        x = self._standardize(s.reshape(-1, self.dim))
        log_det = -self.scale.log().sum()
        if self.model is None:
            inner = -0.5 * (x.pow(2) + math.log(2 * math.pi)).sum(-1)
        else:
            inner = self.model.log_prob(x)
        return (inner + log_det).reshape(batch)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``(n, F)`` draws."""
        if self.model is None:
            x = torch.randn(n, self.dim, device=self.device)
        else:
            x = self.model.sample(n)
        return x * self.scale + self.shift


@torch.no_grad()
def encode_goals(model: WorldModel, goal_obs: Tensor) -> Tensor:
    """Latent outcomes ``(N, S)`` of goal observations ``(N, *shape)``: the stochastic part of
    the state after filtering each observation alone (a zero action before it)."""
    action = torch.zeros(goal_obs.shape[0], 1, model.action_dim)
    return model.observe(goal_obs[:, None], action)[:, 0].stoch


def goal_prior(
    model: WorldModel, goal_obs: Tensor, cfg: LatentPriorConfig | None = None, **changes: Any
) -> LatentPrior:
    """A :class:`LatentPrior` fitted to the encoded ``goal_obs`` ``(N, *shape)``; score imagined
    states with ``prior.log_prob(states.stoch)``."""
    cfg = dataclasses.replace(cfg or LatentPriorConfig(), **changes)
    latents = encode_goals(model, goal_obs)
    prior = LatentPrior(cfg, latents.shape[-1]).to(model.device)
    prior.fit(latents)
    return prior
