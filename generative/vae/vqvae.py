"""VQ-VAE with a gated PixelCNN prior over its code maps, trained in one run.

The conv encoder maps an image ``(C, H, W)`` to a feature map ``(D, h, w)``; each of its
``D``-vectors is replaced by the nearest of ``codes`` codebook vectors (straight-through
gradients, commitment loss; EMA codebook updates by default) and decoded. Each training
step also fits the PixelCNN prior to the (detached) codes of the batch once the
autoencoder has had ``prior_start`` updates, so the model samples: codes from the prior,
then the decoder.

As a latent-variable model the posterior is a point mass on the codes of ``x``, so the
ELBO is ``log p(x | codes) + log p_prior(codes)`` exactly, and importance sampling cannot
improve on it: :meth:`VQVAE.log_prob` returns that bound.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from generative.autoregressive.pixelcnn import PixelCNNNet
from generative.base import DataSpec
from generative.data import DataError
from generative.vae.base import VAEBase, VAEOptions, check
from generative.vae.quantizer import VectorQuantizer


@dataclasses.dataclass(frozen=True)
class VQVAEConfig(VAEOptions):
    """VQ-VAE and its PixelCNN prior; the conv stages set the code map size (8x8 -> 4x4)."""

    net: str = "conv"
    """Must be conv: the codes form a spatial map."""
    channels: tuple[int, ...] = (64,)
    """Channels of the conv stages, each halving the image size."""
    codes: int = 64
    """Codebook size K."""
    code_dim: int = 16
    """Size D of each codebook vector."""
    commitment: float = 0.25
    """Weight of the commitment loss ||z_e - sg(e)||^2."""
    ema_decay: float = 0.99
    """Decay of the EMA codebook updates; 0 learns the codebook through its loss instead."""
    prior_hidden: int = 32
    """Features per layer of the gated PixelCNN prior."""
    prior_layers: int = 3
    """Gated layers of the prior."""
    prior_dropout: float = 0.1
    """Dropout in the prior."""
    prior_start: int = 500
    """Autoencoder updates before the prior starts training on the codes (they settle first)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.net == "conv", "net", self.net, "conv for a VQ-VAE (its codes form a map)")
        check(self.codes >= 2, "codes", self.codes, ">= 2")
        check(self.code_dim >= 1, "code_dim", self.code_dim, ">= 1")
        check(self.commitment >= 0, "commitment", self.commitment, ">= 0")
        check(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "in [0, 1)")
        check(self.prior_hidden >= 1, "prior_hidden", self.prior_hidden, ">= 1")
        check(self.prior_layers >= 1, "prior_layers", self.prior_layers, ">= 1")
        check(0 <= self.prior_dropout < 1, "prior_dropout", self.prior_dropout, "in [0, 1)")
        check(self.prior_start >= 0, "prior_start", self.prior_start, ">= 0")


class VQVAE(VAEBase):
    """VQ-VAE on images ``(B, C, H, W)``; codes ``(B, h, w)`` with a PixelCNN prior."""

    Config = VQVAEConfig
    SMOKE: ClassVar[dict[str, Any]] = {
        "channels": (4,),
        "codes": 4,
        "code_dim": 2,
        "prior_hidden": 4,
        "prior_layers": 1,
        "prior_start": 0,
    }
    # Digits: the validation bound is best near step 1,500; each step also trains the prior.
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 2000, "batch_size": 64, "lr": 1e-3}

    def __init__(self, cfg: VQVAEConfig, spec: DataSpec):
        if spec.kind != "image" or len(spec.shape) != 3:
            raise DataError("VQVAE models images (C, H, W)")
        super().__init__(cfg, spec)
        self.encoder = self.make_encoder(cfg.code_dim, spatial=True)
        self.decoder = self.make_decoder(cfg.code_dim, spatial=True)
        self.quantizer = VectorQuantizer(cfg.codes, cfg.code_dim, cfg.ema_decay)
        self.code_size = self.encoder.feature_size
        self.prior = PixelCNNNet(
            1,
            cfg.codes,
            hidden=cfg.prior_hidden,
            layers=cfg.prior_layers,
            dropout=cfg.prior_dropout,
        )
        # Counts autoencoder updates, so that the prior's start survives checkpoints.
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # -- parts ----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Unquantised encoder map ``(B, D, h, w)`` of data ``(B, C, H, W)``."""
        return self.encoder(self.encoder_input(x))

    @torch.no_grad()
    def codes_of(self, x: torch.Tensor) -> torch.Tensor:
        """Code map ``(B, 1, h, w)`` (integers in ``[0, codes)``) of data ``(B, C, H, W)``."""
        return self.quantizer.nearest(self.encode(x)).unsqueeze(1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code map ``(B, 1, h, w)`` to likelihood parameters ``(B, P, C, H, W)``."""
        return self.decoder(self.quantizer.embed(codes[:, 0]))

    # -- training -------------------------------------------------------------------------
    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Autoencoder loss per example: ``-log p(x | z_q)`` + commitment (+ codebook) loss."""
        z_q, _, aux = self.quantizer(self.encode(batch))
        recon = -self.likelihood.log_prob(self.decoder(z_q), batch)
        total = recon + self.cfg.commitment * aux["commitment"] + aux["codebook"]
        metrics = {
            "recon": float(recon.detach().mean()),
            "commitment": float(aux["commitment"].detach().mean()),
            "perplexity": float(aux["perplexity"]),
        }
        return total.mean(), metrics

    def prior_loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean ``-log p_prior(codes)`` over a code batch ``(B, 1, h, w)``, nats per example."""
        return -self.prior.log_prob(codes).mean()

    def optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        autoencoder = [p for n, p in self.named_parameters() if not n.startswith("prior.")]
        return {
            "opt": torch.optim.Adam(autoencoder, lr=lr),
            "prior_opt": torch.optim.Adam(self.prior.parameters(), lr=lr),
        }

    def train_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, float]:
        """One autoencoder update, then (after ``prior_start`` updates) one prior update."""
        out = super().train_step(batch, optimizers)
        self.updates += 1
        if int(self.updates) > self.cfg.prior_start:
            prior_opt = optimizers["prior_opt"]
            prior_opt.zero_grad(set_to_none=True)
            prior_nll = self.prior_loss(self.codes_of(batch))
            prior_nll.backward()
            prior_opt.step()
            out["prior_nll"] = float(prior_nll.detach())
        return out

    # -- likelihood -----------------------------------------------------------------------
    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` exact ELBO ``log p(x | codes(x)) + log p_prior(codes(x))`` in nats."""
        codes = self.codes_of(x)
        return self.likelihood.log_prob(self.decode_codes(codes), x) + self.prior.log_prob(codes)

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, num_samples: int = 1000) -> torch.Tensor:
        """``(B,)`` the ELBO: with a point-mass posterior every importance sample is the same.

        ``num_samples`` is accepted for the common VAE interface and has no effect.
        """
        return self.elbo(x)

    # -- generation -----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``(n, C, H, W)``: prior codes, then ``p(x | codes)``, both at ``temperature``."""
        codes = self.prior.sample(n, *self.code_size, temperature=temperature)
        return self.likelihood.sample(self.decode_codes(codes), temperature)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in the data's format: the decoded mean of the codes of ``x``."""
        return self.to_data(self.likelihood.mean(self.decode_codes(self.codes_of(x))))

    @torch.no_grad()
    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int = 9) -> torch.Tensor:
        """Paths between encoder maps, quantised and decoded: ``(B, steps, C, H, W)`` in [0, 1].

        Row ``i`` goes from ``start[i]`` to ``end[i]`` (both ``(B, C, H, W)``).
        """
        a, b = self.encode(start), self.encode(end)
        t = torch.linspace(0, 1, steps, device=a.device).view(1, steps, 1, 1, 1)
        z = (a.unsqueeze(1) * (1 - t) + b.unsqueeze(1) * t).flatten(0, 1)
        codes = self.quantizer.nearest(z).unsqueeze(1)
        images = self.to_unit(self.likelihood.mean(self.decode_codes(codes)))
        return images.view(a.shape[0], steps, *images.shape[1:])
