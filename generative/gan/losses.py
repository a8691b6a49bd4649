"""Adversarial losses and the WGAN-GP gradient penalty.

``critic`` outputs are ``(B,)`` scores (logits for ``bce``). Each function returns the
mean loss over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

LOSSES = ("bce", "hinge", "wgan-gp")


def critic_loss(kind: str, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The critic's (discriminator's) loss from its scores on real and fake batches."""
    if kind == "bce":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    if kind == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    if kind == "wgan-gp":
        return fake_scores.mean() - real_scores.mean()
    raise ValueError(f"invalid loss={kind!r}: must be one of {', '.join(LOSSES)}")


def generator_loss(kind: str, fake_scores: Tensor) -> Tensor:
    """The generator's loss: non-saturating ``-log D(G(z))`` for ``bce``, ``-D(G(z))`` else."""
    if kind == "bce":
        return F.softplus(-fake_scores).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake_scores.mean()
    raise ValueError(f"invalid loss={kind!r}: must be one of {', '.join(LOSSES)}")


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """``E[(||grad_x critic(x)||_2 - 1)^2]`` at random interpolates of ``real`` and ``fake``.

    One interpolation coefficient per example (not per pixel), and the gradient norm is
    taken over all non-batch dimensions together; ``real, fake (B, ...)``. The graph is
    kept so the penalty trains the critic.
    """
    alpha = torch.rand(
        real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype
    )
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
