"""Prediction heads on latent features: reward (a unit-variance Gaussian) and continuation
(a Bernoulli on "the episode goes on")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.vae.nets import mlp

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


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
