"""Vector quantisation for VQ-VAE: nearest-codebook lookup with straight-through gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    """Replace each ``D``-vector of a feature map by its nearest of ``K`` codebook entries.

    With ``ema_decay > 0`` the codebook follows exponential moving averages of the
    vectors assigned to each code (and entries that fall out of use are restarted at
    encoder outputs); with ``ema_decay == 0`` it is a parameter learned through the
    codebook loss. Either way the codebook starts at encoder outputs of the first
    training batch, so that every code begins in use.
    """

    def __init__(self, codes: int, dim: int, ema_decay: float = 0.99):
        super().__init__()
        self.codes, self.dim, self.ema_decay = codes, dim, ema_decay
        if ema_decay > 0:
            self.register_buffer("codebook", torch.zeros(codes, dim))
            self.register_buffer("ema_count", torch.zeros(codes))
            self.register_buffer("ema_sum", torch.zeros(codes, dim))
        else:
            self.codebook = nn.Parameter(torch.zeros(codes, dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, h, w)`` of the nearest codes to the feature map ``(B, D, h, w)``."""
        flat = z_e.movedim(1, -1).reshape(-1, self.dim)
        distances = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)
        )
        b, _, h, w = z_e.shape
        return distances.argmin(1).view(b, h, w)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` to their vectors ``(B, D, h, w)``."""
        return F.embedding(codes, self.codebook).movedim(-1, 1)

    def forward(
        self, z_e: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise ``z_e`` ``(B, D, h, w)``.

        Returns the straight-through quantised map ``(B, D, h, w)`` (values of the codes,
        gradients of ``z_e``), the codes ``(B, h, w)`` and per-example losses ``(B,)``:
        ``commitment`` ``||z_e - sg(e)||^2`` and ``codebook`` ``||sg(z_e) - e||^2`` (zero
        with EMA updates), summed over the map, plus the batch's code ``perplexity``.
        """
        if self.training and not bool(self.initialised):
            self._initialise(z_e.detach())
        codes = self.nearest(z_e.detach())
        if self.training and self.ema_decay > 0:
            self._ema_update(z_e.detach(), codes)
        z_q = self.embed(codes)
        commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1)
        if self.ema_decay > 0:
            codebook = torch.zeros_like(commitment)
        else:
            codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(1)
        usage = F.one_hot(codes.flatten(), self.codes).float().mean(0)
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        z_st = z_e + (z_q - z_e).detach()
        return (
            z_st,
            codes,
            {"commitment": commitment, "codebook": codebook, "perplexity": perplexity},
        )

    @torch.no_grad()
    def _initialise(self, z_e: torch.Tensor) -> None:
        self.codebook.data.copy_(self._random_vectors(z_e, self.codes))
        if self.ema_decay > 0:
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(self.codebook)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z_e: torch.Tensor, codes: torch.Tensor) -> None:
        flat = z_e.movedim(1, -1).reshape(-1, self.dim)
        one_hot = F.one_hot(codes.flatten(), self.codes).type_as(flat)
        d = self.ema_decay
        self.ema_count.mul_(d).add_(one_hot.sum(0), alpha=1 - d)
        self.ema_sum.mul_(d).add_(one_hot.t() @ flat, alpha=1 - d)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.codes * 1e-5) * n
        self.codebook.copy_(self.ema_sum / count.unsqueeze(1))
        # A code that no vector has chosen for a long while restarts at an encoder output.
        dead = self.ema_count < 1e-3
        if dead.any():
            fresh = self._random_vectors(z_e, int(dead.sum()))
            self.codebook[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0

    @staticmethod
    def _random_vectors(z_e: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` vectors ``(n, D)`` drawn (with replacement) from the map ``(B, D, h, w)``."""
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])
        return flat[torch.randint(0, flat.shape[0], (n,), device=flat.device)]
