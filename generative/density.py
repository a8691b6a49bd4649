"""Densities over vectors that are fitted from examples and then queried.

World models fit them over latent states to score preferences, and VAEs use them as
priors. A density has ``log_prob(x (B, D)) -> (B,)`` and ``sample(n) -> (n, D)``;
:func:`fit_density` trains the :class:`GenerativeModel` behind one on a tensor of examples.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from generative.base import GenerativeModel


class Density(Protocol):
    """What a density over ``(B, D)`` vectors offers."""

    def log_prob(self, x: Tensor) -> Tensor: ...

    def sample(self, n: int) -> Tensor: ...


def fit_density(
    model: GenerativeModel,
    examples: Tensor,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train ``model`` on random batches of ``examples (N, D)`` with its own ``train_step``;
    return the training loss of every step. ``generator`` draws the batch indices (default:
    the global RNG). The model is left in eval mode."""
    if examples.dim() != 2 or examples.shape[1] != model.spec.dims:
        raise ValueError(f"expected examples (N, {model.spec.dims}), got {tuple(examples.shape)}")
    model.train()
    optimizers = model.optimizers(lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(
            0, examples.shape[0], (min(batch_size, examples.shape[0]),), generator=generator
        )
        metrics = model.train_step(examples[idx.to(examples.device)], optimizers)
        losses.append(float(metrics["loss"]))
    model.eval()
    return losses
