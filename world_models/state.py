"""The latent state every world model passes around: a deterministic and a stochastic part."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class LatentState:
    """A batch of latent states with any leading shape ``(*batch)``, e.g. ``(B,)`` or ``(B, T)``.

    deter: ``(*batch, H)`` the deterministic part (a recurrent model's hidden state; for the
        ensemble, the input of the transition that produced the state).
    stoch: ``(*batch, S)`` the stochastic part, the outcome-like part of the state that
        preference priors score (an RSSM's sample, a VAE latent, an observation vector).
    stats: ``(*batch, P)`` or ``None``: parameters of the distribution ``stoch`` was drawn
        from (Gaussian: mean then std; categorical: log-probabilities), for KL and entropy.
    """

    deter: Tensor
    stoch: Tensor
    stats: Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The leading (batch) shape."""
        return tuple(self.stoch.shape[:-1])

    @property
    def features(self) -> Tensor:
        """``(*batch, H + S)``: both parts side by side, the input of the heads."""
        return torch.cat([self.deter, self.stoch], -1)

    def map(self, fn: Any) -> LatentState:
        """Apply ``fn`` to every tensor (``stats`` stays ``None`` when absent)."""
        return LatentState(
            fn(self.deter), fn(self.stoch), None if self.stats is None else fn(self.stats)
        )

    def __getitem__(self, index: Any) -> LatentState:
        """Index the leading dimensions, e.g. ``states[:, -1]`` for the last time step."""
        return self.map(lambda t: t[index])

    def detach(self) -> LatentState:
        return self.map(Tensor.detach)

    def to(self, device: torch.device | str) -> LatentState:
        return self.map(lambda t: t.to(device))

    def reshape(self, *shape: int) -> LatentState:
        """A new leading shape with the same number of states."""
        return self.map(lambda t: t.reshape(*shape, t.shape[-1]))

    def flatten(self) -> LatentState:
        """``(*batch, .) -> (N, .)``."""
        return self.reshape(-1)

    def repeat_interleave(self, n: int) -> LatentState:
        """``(B, .) -> (B * n, .)``: each state ``n`` times in a row (one per candidate)."""
        return self.map(lambda t: t.repeat_interleave(n, dim=0))

    @staticmethod
    def stack(states: Sequence[LatentState], dim: int = 1) -> LatentState:
        """Stack states ``(B, .)`` along a new dimension, e.g. time: ``(B, T, .)``."""
        has_stats = states[0].stats is not None
        return LatentState(
            torch.stack([s.deter for s in states], dim),
            torch.stack([s.stoch for s in states], dim),
            torch.stack([s.stats for s in states], dim) if has_stats else None,  # type: ignore[misc]
        )

    @staticmethod
    def cat(states: Sequence[LatentState], dim: int = 1) -> LatentState:
        """Concatenate states along an existing leading dimension."""
        has_stats = states[0].stats is not None
        return LatentState(
            torch.cat([s.deter for s in states], dim),
            torch.cat([s.stoch for s in states], dim),
            torch.cat([s.stats for s in states], dim) if has_stats else None,  # type: ignore[misc]
        )
