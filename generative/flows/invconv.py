"""Invertible 1x1 convolution (Glow) in LU form: ``log|det W|`` costs ``O(C)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generative.flows.bijection import Bijection


class InvertibleConv1x1(Bijection):
    """Mix channels with ``W = P L (U + diag(sign_s * exp(log_s)))``.

    ``P`` is a fixed permutation, ``L`` unit lower triangular, ``U`` strictly upper
    triangular; ``W`` starts as a random rotation. On images ``(B, C, H, W)`` it is a 1x1
    convolution, on vectors ``(B, C)`` a linear map; ``log|det| = H * W * sum(log_s)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight(self) -> Tensor:
        """The ``(C, C)`` mixing matrix."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def _mix(self, w: Tensor, x: Tensor) -> Tensor:
        return torch.einsum("ij,bj...->bi...", w, x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        spatial = x[0, 0].numel()
        return self._mix(self.weight(), x), (spatial * self.log_s.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return self._mix(torch.linalg.inv(self.weight()), z)
