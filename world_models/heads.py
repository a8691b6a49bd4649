"""Prediction heads on latent features: reward (a unit-variance Gaussian) and continuation
(a Bernoulli on "the episode goes on")."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.vae.nets import mlp

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# Rows per block when a head reads out many states without autograd (see read_out).
READ_OUT_ROWS = 2048


def read_out(head: Callable[[Tensor], Tensor], *parts: Tensor) -> Tensor:
    """``head`` on the features ``cat(parts, -1)``, each part ``(*batch, .)`` -> ``(*batch,)``.

    Without autograd, many rows go through in blocks of ``READ_OUT_ROWS``, concatenated
    block by block: a plan's 15,000 rows in one block took several times longer on a CPU,
    its large temporaries missing the cache and fresh from the system each time. The
    values are float32, also from a head run under a lower-precision autocast."""
    batch = parts[0].shape[:-1]
    if torch.is_grad_enabled() or math.prod(batch) <= READ_OUT_ROWS:
        return head(torch.cat(parts, -1) if len(parts) > 1 else parts[0]).float()
    flat = [p.reshape(-1, p.shape[-1]).split(READ_OUT_ROWS) for p in parts]
    blocks = [head(torch.cat(block, -1)) for block in zip(*flat, strict=True)]
    return torch.cat(blocks).view(batch).float()


class RewardHead(nn.Module):
    """``(..., F) -> (...)`` expected reward; trained by the Gaussian negative log-likelihood."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(in_features, hidden, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)

    def nll(self, features: Tensor, target: Tensor) -> Tensor:
        """``(...)`` negative log-likelihood of ``target`` under ``N(mean, 1)``, nats."""
        return 0.5 * (self(features) - target).pow(2) + HALF_LOG_2PI


class ContinuationHead(nn.Module):
    """``(..., F) -> (...)`` logit of the probability that the episode goes on."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = mlp(in_features, hidden, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)

    def probability(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self(features))

    def nll(self, features: Tensor, terminated: Tensor) -> Tensor:
        """``(...)`` binary cross-entropy of "goes on" (``1 - terminated``), nats."""
        return F.binary_cross_entropy_with_logits(
            self(features), (~terminated.bool()).float(), reduction="none"
        )


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is true (zero when nothing is)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)
