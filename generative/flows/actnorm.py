"""ActNorm (Glow): a per-channel affine map initialised from the first batch it sees."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generative.flows.bijection import Bijection


class ActNorm(Bijection):
    """``z = (x + bias) * exp(log_scale)`` per channel (images) or per feature (vectors).

    On the first forward pass in training mode the parameters are set so that the batch's
    output has zero mean and unit variance per channel (data-dependent initialisation);
    ``initialized`` is a buffer, so a loaded checkpoint does not initialise again.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps

    def _view(self, p: Tensor, x: Tensor) -> Tensor:
        return p.view(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dim=dims)
        std = x.std(dim=dims) if x.shape[0] > 1 else torch.ones_like(mean)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self._initialize(x)
        z = (x + self._view(self.bias, x)) * torch.exp(self._view(self.log_scale, x))
        spatial = x[0, 0].numel()
        return z, (spatial * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z * torch.exp(-self._view(self.log_scale, z)) - self._view(self.bias, z)
