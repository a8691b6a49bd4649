"""What every VAE shares: the network and likelihood options, data scaling, and the
importance-sampled ``log_prob`` built on a model's ``log_weights``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn

from generative.base import DataSpec, GenerativeModel, check, check_choice
from generative.data import DataError
from generative.vae.likelihoods import LIKELIHOODS, make_likelihood
from generative.vae.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

NETS = ("mlp", "conv")

# Decoder output floats per chunk of importance samples in log_prob (about 64 MB in
# float32): bounds memory whatever the image size or the number of samples.
EVAL_FLOATS = 2**24


@dataclasses.dataclass(frozen=True)
class VAEOptions:
    """Networks and observation model, shared by every VAE's config."""

    net: str = "mlp"
    """mlp | conv: MLPs on flattened examples, or stride-2 conv stacks on images."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP encoder and decoder (net=mlp)."""
    channels: tuple[int, ...] = (32, 64)
    """Channels of the conv stages, each halving the image size (net=conv)."""
    likelihood: str = "auto"
    """auto | bernoulli | categorical | logistic | logistic-mixture | normal; auto picks
    bernoulli for binary data, the discretised logistic for grey levels, normal for
    continuous data."""
    mixtures: int = 5
    """Components of the logistic-mixture likelihood."""

    def __post_init__(self) -> None:
        check_choice("net", self.net, NETS)
        check(all(h > 0 for h in self.hidden), "hidden", self.hidden, "positive widths")
        check(
            len(self.channels) > 0 and all(c > 0 for c in self.channels),
            "channels",
            self.channels,
            "at least one positive width",
        )
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check(self.mixtures >= 1, "mixtures", self.mixtures, ">= 1")


class VAEBase(GenerativeModel):
    """A latent-variable model ``p(x | z) p(z)`` with an amortised posterior ``q(z | x)``.

    Subclasses implement :meth:`log_weights` (importance weights of posterior draws) and
    :meth:`elbo`; this class turns them into an importance-sampled :meth:`log_prob`.
    """

    BENCHMARKS: ClassVar[tuple[str, ...]] = ("digits",)

    def __init__(self, cfg: VAEOptions, spec: DataSpec):
        super().__init__(cfg, spec)
        if spec.kind not in ("image", "vector"):
            raise DataError(f"{type(self).__name__} models image or vector data, not {spec.kind}")
        if cfg.net == "conv" and not (spec.kind == "image" and len(spec.shape) == 3):
            raise DataError("net='conv' needs images (C, H, W); use net='mlp'")
        try:
            self.likelihood = make_likelihood(cfg.likelihood, spec.levels, cfg.mixtures)
        except ValueError as e:
            raise DataError(str(e)) from None

    # -- networks -------------------------------------------------------------------------
    def make_encoder(self, out_features: int, spatial: bool = False) -> nn.Module:
        """``(B, *shape) -> (B, out_features)`` (or a feature map with ``spatial``)."""
        if self.cfg.net == "conv":
            return ConvEncoder(self.spec.shape, out_features, self.cfg.channels, spatial)
        return MLPEncoder(self.spec.shape, out_features, self.cfg.hidden)

    def make_decoder(self, in_features: int, spatial: bool = False) -> nn.Module:
        """``(B, in_features) -> (B, P, *shape)`` likelihood parameters, ``P`` per dimension."""
        p = self.likelihood.params_per_dim
        if self.cfg.net == "conv":
            c, h, w = self.spec.shape
            return _SplitChannels(
                ConvDecoder(in_features, (p * c, h, w), self.cfg.channels, spatial), p
            )
        return MLPDecoder(in_features, (p, *self.spec.shape), tuple(reversed(self.cfg.hidden)))

    # -- data -----------------------------------------------------------------------------
    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """Integer levels to floats in [0, 1]; continuous data unchanged. Same shape."""
        if self.spec.levels is None:
            return x.float()
        return x.float() / (self.spec.levels - 1)

    def to_data(self, values: torch.Tensor) -> torch.Tensor:
        """Expected values in data units to the data's format: the nearest level when discrete."""
        if self.spec.levels is None:
            return values
        return values.round().clamp(0, self.spec.levels - 1).long()

    def to_unit(self, values: torch.Tensor) -> torch.Tensor:
        """Data-unit values (levels, or continuous) to images in [0, 1] for grids."""
        if self.spec.levels is None:
            return values.clamp(0, 1)
        return (values.float() / (self.spec.levels - 1)).clamp(0, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, ...)`` to likelihood parameters ``(B, P, *shape)``."""
        raise NotImplementedError

    def grid_images(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(R, S, ...)`` to decoded means as images in [0, 1]: ``(R, S, *shape)``."""
        r, s = z.shape[:2]
        images = self.to_unit(self.likelihood.mean(self.decode(z.flatten(0, 1))))
        return images.view(r, s, *images.shape[1:])

    # -- likelihood estimates ---------------------------------------------------------------
    def log_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``(S, B)`` log importance weights ``log p(x, z) - log q(z | x)``, ``z ~ q(z | x)``."""
        raise NotImplementedError

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` evidence lower bound in nats."""
        raise NotImplementedError

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, num_samples: int = 1000) -> torch.Tensor:
        """``(B,)`` importance-sampled estimate of ``log p(x)`` in nats, without gradients.

        ``log (1/S) sum_s p(x, z_s) / q(z_s | x)`` with ``S = num_samples`` posterior draws:
        a lower bound in expectation (the IWAE bound) that tightens as ``S`` grows. Draws are
        taken in chunks so that memory stays bounded.
        """
        pairs = max(1, EVAL_FLOATS // (self.spec.dims * self.likelihood.params_per_dim))
        out = []
        for xb in x.split(pairs):
            chunk = max(1, pairs // xb.shape[0])
            weights = [
                self.log_weights(xb, min(chunk, num_samples - start))
                for start in range(0, num_samples, chunk)
            ]
            out.append(torch.logsumexp(torch.cat(weights), 0) - math.log(num_samples))
        return torch.cat(out)


class _SplitChannels(nn.Module):
    """Reshape a conv decoder's ``(B, P*C, H, W)`` output to ``(B, P, C, H, W)``."""

    def __init__(self, decoder: nn.Module, params_per_dim: int):
        super().__init__()
        self.decoder = decoder
        self.params_per_dim = params_per_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return out.view(out.shape[0], self.params_per_dim, -1, *out.shape[2:])
