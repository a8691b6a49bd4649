"""Generators and critics: DCGAN-style convolutional nets for images, MLPs for vectors."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("none", "batch", "layer")


def _critic_norm(kind: str, channels: int, conv: bool) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if conv else nn.BatchNorm1d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels) if conv else nn.LayerNorm(channels)
    return nn.Identity()


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every convolution and linear layer of ``module`` (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d | nn.Linear):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


class ImageGenerator(nn.Module):
    """``z (B, Z) -> (B, C, H, W)`` in ``[-1, 1]``: project to ``H/4 x W/4``, two strided
    transposed convolutions (batch norm, ReLU), a 3x3 convolution and ``tanh``."""

    def __init__(self, latent_dim: int, shape: tuple[int, ...], channels: int):
        super().__init__()
        c, h, w = shape
        self.base = (4 * channels, h // 4, w // 4)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 4 * channels * (h // 4) * (w // 4)),
            nn.Unflatten(1, self.base),
            nn.BatchNorm2d(4 * channels),
            nn.ReLU(),
        )
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * channels, 2 * channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, c, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.project(z))


class ImageCritic(nn.Module):
    """``(B, C, H, W) -> (B,)`` scores: a 3x3 convolution, two strided 4x4 convolutions
    (optional normalisation, LeakyReLU 0.2) and a linear read-out."""

    def __init__(self, shape: tuple[int, ...], channels: int, norm: str = "none"):
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            _critic_norm(norm, 2 * channels, conv=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * channels, 4 * channels, 4, stride=2, padding=1),
            _critic_norm(norm, 4 * channels, conv=True),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(4 * channels * (h // 4) * (w // 4), 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class VectorGenerator(nn.Module):
    """``z (B, Z) -> (B, D)``: an MLP with ReLU hidden layers."""

    def __init__(self, latent_dim: int, dim: int, hidden: int, layers: int):
        super().__init__()
        modules: list[nn.Module] = []
        width = latent_dim
        for _ in range(layers):
            modules += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.net = nn.Sequential(*modules, nn.Linear(width, dim))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class VectorCritic(nn.Module):
    """``(B, D) -> (B,)`` scores: an MLP with LeakyReLU hidden layers."""

    def __init__(self, dim: int, hidden: int, layers: int, norm: str = "none"):
        super().__init__()
        modules: list[nn.Module] = []
        width = dim
        for _ in range(layers):
            modules += [
                nn.Linear(width, hidden),
                _critic_norm(norm, hidden, False),
                nn.LeakyReLU(0.2),
            ]
            width = hidden
        self.net = nn.Sequential(*modules, nn.Linear(width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)
