"""GANs as :class:`GenerativeModel`: DCGAN and WGAN-GP share one class and differ in defaults.

A GAN supplies its own two optimisers and ``train_step``: every step updates the critic
once, and every ``n_critic``-th step also the generator. Samples come from an exponential
moving average of the generator's weights (``ema``). GANs define no ``log_prob``; evaluate
them with :mod:`generative.metrics`.

Vector data (the 2-D toys) needs another training budget than images: ``TRAIN_BY_KIND``
holds it (``runs`` reads ``TRAIN``, the image budget, as every model's default).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from generative.base import DataSpec, GenerativeModel, update_average
from generative.base import check as _check
from generative.data import DataError
from generative.gan.losses import LOSSES, critic_loss, generator_loss, gradient_penalty
from generative.gan.nets import (
    NORMS,
    ImageCritic,
    ImageGenerator,
    VectorCritic,
    VectorGenerator,
    apply_spectral_norm,
)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """GAN options; the defaults are DCGAN's."""

    latent_dim: int = 32
    """Size of the generator's noise vector z."""
    channels: int = 32
    """Images: base channels of generator and critic."""
    hidden: int = 128
    """Vectors: MLP width."""
    layers: int = 3
    """Vectors: hidden layers of the MLPs."""
    loss: str = "bce"
    """bce (non-saturating) | hinge | wgan-gp."""
    gp_weight: float = 10.0
    """wgan-gp: weight of the gradient penalty."""
    n_critic: int = 1
    """Critic updates per generator update."""
    d_lr_ratio: float = 1.0
    """Two-time-scale rule: the critic's learning rate is the trainer's lr times this."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of both optimisers."""
    spectral_norm: bool = False
    """Spectrally normalise every layer of the critic."""
    critic_norm: str = "auto"
    """Normalisation in the critic: auto | none | batch | layer (batch is not allowed with
    wgan-gp). auto: batch for images (DCGAN), none for vectors (an MLP critic with batch norm
    diverged on the 2-D toys at their learning rate)."""
    ema: float = 0.999
    """Decay per generator step of the weight average that samples are drawn from (Yazici et
    al. 2019: it damps the oscillation of GAN training); 0 = sample the last weights."""

    def __post_init__(self) -> None:
        for name in ("latent_dim", "channels", "hidden", "layers", "n_critic"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        _check(self.loss in LOSSES, "loss", self.loss, " | ".join(LOSSES))
        norms = ("auto", *NORMS)
        _check(self.critic_norm in norms, "critic_norm", self.critic_norm, " | ".join(norms))
        _check(0 <= self.ema < 1, "ema", self.ema, "in [0, 1)")
        _check(self.gp_weight >= 0, "gp_weight", self.gp_weight, ">= 0")
        _check(self.d_lr_ratio > 0, "d_lr_ratio", self.d_lr_ratio, "> 0")
        _check(len(self.betas) == 2, "betas", self.betas, "two numbers")
        _check(
            not (self.loss == "wgan-gp" and self.critic_norm in ("batch", "auto")),
            "critic_norm",
            self.critic_norm,
            "none or layer with wgan-gp (batch norm breaks the per-example gradient penalty)",
        )

    def critic_norm_for(self, kind: str) -> str:
        """The critic's normalisation for data of ``kind`` (``image`` | ``vector``)."""
        if self.critic_norm != "auto":
            return self.critic_norm
        return "batch" if kind == "image" else "none"


@dataclasses.dataclass(frozen=True)
class WGANGPConfig(GANConfig):
    """WGAN-GP defaults (Gulrajani et al. 2017): 5 critic steps, no norm, Adam(0.5, 0.9) as in
    the authors' code (the paper's beta1 = 0 kept the 2-D toys circling between modes)."""

    loss: str = "wgan-gp"
    n_critic: int = 5
    betas: tuple[float, float] = (0.5, 0.9)
    critic_norm: str = "none"


class GAN(GenerativeModel):
    """Generator ``G(z)`` and critic ``D(x)``; images live in ``[-1, 1]`` inside the model."""

    Config = GANConfig
    SMOKE: ClassVar[dict[str, Any]] = {"latent_dim": 8, "channels": 4, "hidden": 16, "layers": 1}
    TRAIN: ClassVar[dict[str, Any]] = {"lr": 2e-4, "batch_size": 64, "steps": 5000}
    # 2-D toys: at lr 2e-4 and batches of 64, samples still spread between modes after the
    # image budget; batches of 256 and lr 1e-3 settle them (benchmarks/bench_mode_coverage.py)
    TRAIN_BY_KIND: ClassVar[dict[str, dict[str, Any]]] = {
        "vector": {"lr": 1e-3, "batch_size": 256, "steps": 10000}
    }

    def __init__(self, cfg: GANConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        if spec.kind == "image":
            _, h, w = spec.shape
            if h % 4 or w % 4:
                raise DataError(f"GAN images need sides divisible by 4, got {h}x{w}")
            self.generator: nn.Module = ImageGenerator(cfg.latent_dim, spec.shape, cfg.channels)
            norm = cfg.critic_norm_for("image")
            self.critic: nn.Module = ImageCritic(spec.shape, cfg.channels, norm)
        elif spec.kind == "vector":
            self.generator = VectorGenerator(cfg.latent_dim, spec.dims, cfg.hidden, cfg.layers)
            norm = cfg.critic_norm_for("vector")
            self.critic = VectorCritic(spec.dims, cfg.hidden, cfg.layers, norm)
        else:
            raise DataError(f"GANs model images or vectors, not {spec.kind} data")
        if cfg.spectral_norm:
            apply_spectral_norm(self.critic)
        # the weight average samples are drawn from; a copy, never optimised
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.register_buffer("critic_steps", torch.tensor(0))
        self.register_buffer("generator_steps", torch.tensor(0))

    # -- data ------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Data to the model's space: integer levels to ``[-1, 1]``, vectors unchanged."""
        if self.spec.levels is None:
            return x
        return x.float() * (2.0 / (self.spec.levels - 1)) - 1.0

    def decode(self, y: Tensor) -> Tensor:
        """The model's space back to data: nearest level for discrete data."""
        if self.spec.levels is None:
            return y
        levels = self.spec.levels
        return torch.round((y + 1) * (levels - 1) / 2).clamp(0, levels - 1).long()

    def noise(self, n: int) -> Tensor:
        return torch.randn(n, self.cfg.latent_dim, device=self.critic_steps.device)

    # -- objectives ------------------------------------------------------------------------
    def critic_objective(self, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The critic's loss on encoded ``real`` and ``fake`` batches, with the penalty."""
        real_scores, fake_scores = self.critic(real), self.critic(fake)
        loss = critic_loss(self.cfg.loss, real_scores, fake_scores)
        metrics = {
            "d_real": float(real_scores.detach().mean()),
            "d_fake": float(fake_scores.detach().mean()),
        }
        if self.cfg.loss == "wgan-gp":
            penalty = gradient_penalty(self.critic, real, fake)
            metrics["wasserstein"] = metrics["d_real"] - metrics["d_fake"]
            metrics["gradient_penalty"] = float(penalty.detach())
            loss = loss + self.cfg.gp_weight * penalty
        metrics["loss_d"] = float(loss.detach())
        return loss, metrics

    def loss(self, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The critic's loss against fresh samples (no update); for monitoring."""
        with torch.enable_grad():
            fake = self.generator(self.noise(batch.shape[0])).detach()
            return self.critic_objective(self.encode(batch), fake)

    def optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        """Adam for the generator at ``lr`` and for the critic at ``lr * d_lr_ratio``."""
        betas = tuple(self.cfg.betas)
        return {
            "opt_g": torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas),
            "opt_d": torch.optim.Adam(
                self.critic.parameters(), lr=lr * self.cfg.d_lr_ratio, betas=betas
            ),
        }

    def train_step(
        self, batch: Tensor, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, float]:
        """One critic update; every ``n_critic``-th call also one generator update."""
        opt_g, opt_d = optimizers["opt_g"], optimizers["opt_d"]
        real = self.encode(batch)
        with torch.no_grad():
            fake = self.generator(self.noise(real.shape[0]))
        loss_d, metrics = self.critic_objective(real, fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        self.critic_steps += 1
        if int(self.critic_steps) % self.cfg.n_critic == 0:
            loss_g = generator_loss(
                self.cfg.loss, self.critic(self.generator(self.noise(real.shape[0])))
            )
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            self.update_average()
            metrics["loss_g"] = float(loss_g.detach())
        return {"loss": metrics["loss_d"], **metrics}

    @torch.no_grad()
    def update_average(self) -> None:
        """Move ``generator_ema`` toward the generator (``generative.base.update_average``;
        batch-norm statistics are copied)."""
        self.generator_steps += 1
        update_average(self.generator_ema, self.generator, self.cfg.ema, int(self.generator_steps))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``(n, *shape)`` samples of the averaged generator; ``temperature`` scales ``z``."""
        return self.decode(self.generator_ema(self.noise(n) * temperature))


class DCGAN(GAN):
    """DCGAN (Radford et al. 2016): non-saturating loss, batch norm; hinge loss and
    spectral normalisation as options."""


class WGANGP(GAN):
    """WGAN-GP: Wasserstein critic with a gradient penalty, 5 critic steps per generator step."""

    Config = WGANGPConfig
    TRAIN: ClassVar[dict[str, Any]] = {"lr": 2e-4, "batch_size": 64, "steps": 10000}
    # at lr 1e-3 one seed of three kept circling (0.56 within 3 sd); 5e-4 settled all tried
    TRAIN_BY_KIND: ClassVar[dict[str, dict[str, Any]]] = {
        "vector": {"lr": 5e-4, "batch_size": 256, "steps": 20000}
    }
