"""The World Models pair (Ha and Schmidhuber, 2018): a VAE on frames and an MDN-RNN over its
latents.

The VAE (:class:`generative.vae.gaussian.GaussianVAE`: conv nets for pixels, MLPs for
vectors) compresses each observation into ``z_t``. A GRU reads ``[z_{t-1}, a_t]`` into
``h_t``, and a mixture density network predicts ``p(z_t | h_t)`` as a mixture of ``K``
diagonal Gaussians; reward and continuation heads read ``[h_t, z_t]``. Both parts train
together on the same chunks, the RNN on detached draws of ``z`` so it never pulls the VAE
towards easy-to-predict codes. Sampling at a temperature ``tau`` divides the mixture
logits by ``tau`` and scales the Gaussians' std by ``sqrt(tau)``, as in the paper, so
imagined ("dreamed") rollouts can be made more or less adventurous.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from generative.base import DataSpec
from generative.vae.gaussian import GaussianVAE, GaussianVAEConfig
from world_models.base import PIXEL_LEVELS, WorldModel, check
from world_models.heads import HALF_LOG_2PI, ContinuationHead, RewardHead, masked_mean
from world_models.replay import Chunk
from world_models.state import LatentState


@dataclasses.dataclass(frozen=True)
class MDNRNNConfig:
    """Sizes of the VAE and the MDN-RNN."""

    latent: int = 32
    """Size of the VAE latent z."""
    hidden: int = 256
    """Size of the GRU state h."""
    mixtures: int = 5
    """Gaussian components K of the mixture density network."""
    temperature: float = 1.0
    """Sampling temperature tau of imagined rollouts."""
    mlp: tuple[int, ...] = (256, 256)
    """Hidden widths of the VAE's MLPs (vector observations)."""
    head: tuple[int, ...] = (256, 256)
    """Hidden widths of the reward and continuation heads."""
    channels: tuple[int, ...] = (32, 64, 128, 256)
    """Conv stages of the VAE on pixels, each halving the image size."""
    beta: float = 1.0
    """Weight of the VAE's KL term."""
    min_std: float = 0.01
    """Lower bound of the mixture components' std."""

    def __post_init__(self) -> None:
        for name in ("latent", "hidden", "mixtures"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        check(self.temperature > 0, "temperature", self.temperature, "> 0")
        check(all(h >= 1 for h in self.mlp), "mlp", self.mlp, "positive widths")
        check(all(h >= 1 for h in self.head), "head", self.head, "positive widths")
        check(
            len(self.channels) > 0 and all(c >= 1 for c in self.channels),
            "channels",
            self.channels,
            "at least one positive width",
        )
        check(self.beta >= 0, "beta", self.beta, ">= 0")
        check(self.min_std > 0, "min_std", self.min_std, "> 0")


class MDNRNN(WorldModel):
    """VAE + MDN-RNN over pixels ``(3, H, W)`` uint8 or vectors ``(D,)``.

    ``LatentState.deter`` is the GRU state ``h`` ``(..., hidden)``, ``stoch`` the latent
    ``z`` ``(..., latent)``; in imagined states ``stats`` holds the mean and std of the
    mixture component ``z`` was drawn from (or of the whole mixture when not sampling),
    ``(..., 2 * latent)``.
    """

    Config = MDNRNNConfig
    SMOKE: ClassVar[dict[str, Any]] = {
        "latent": 4,
        "hidden": 16,
        "mixtures": 2,
        "mlp": (16,),
        "head": (16,),
        "channels": (4, 4, 8, 8),
    }
    # A Normal likelihood over a few standardised numbers weighs about as much as the KL,
    # and with beta=1 the VAE collapses onto its prior; pixels carry thousands of nats.
    STATE: ClassVar[dict[str, Any]] = {
        "latent": 16,
        "hidden": 64,
        "mlp": (128, 128),
        "head": (64, 64),
        "beta": 0.1,
    }
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 5000, "batch_size": 16, "seq_len": 32, "lr": 1e-3}

    def __init__(self, cfg: MDNRNNConfig, spec: DataSpec, action_dim: int):
        super().__init__(cfg, spec, action_dim)
        vae_cfg = GaussianVAEConfig(
            net="conv" if self.pixels else "mlp",
            hidden=cfg.mlp,
            channels=cfg.channels,
            latent_dim=cfg.latent,
            beta=cfg.beta,
        )
        levels = int(PIXEL_LEVELS) + 1 if self.pixels else None
        self.vae = GaussianVAE(vae_cfg, DataSpec(spec.kind, tuple(spec.shape), levels))
        self.rnn = nn.GRU(cfg.latent + action_dim, cfg.hidden, batch_first=True)
        self.mdn = nn.Linear(cfg.hidden, cfg.mixtures * (1 + 2 * cfg.latent))
        features = cfg.hidden + cfg.latent
        self.reward_head = RewardHead(features, cfg.head)
        self.cont_head = ContinuationHead(features, cfg.head)

    # -- the VAE ----------------------------------------------------------------------------
    def _vae_input(self, obs: Tensor) -> Tensor:
        """Observations ``(N, *shape)`` as the VAE's data: pixel levels, standardised vectors."""
        obs = obs.to(self.device)
        return obs.long() if self.pixels else self.preprocess(obs)

    def encode(self, obs: Tensor, sample: bool = False) -> Tensor:
        """Latents ``(..., latent)`` of observations ``(..., *shape)``: the posterior mean, or
        a draw with ``sample``."""
        batch = obs.shape[: obs.dim() - len(self.spec.shape)]
        q = self.vae.posterior(self._vae_input(obs.reshape(-1, *self.spec.shape)))
        z = q.sample() if sample else q.loc
        return z.reshape(*batch, -1)

    # -- the mixture density network --------------------------------------------------------
    def mixture(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``p(z | h)``: log-weights ``(..., K)``, means and stds ``(..., K, latent)``."""
        k, d = self.cfg.mixtures, self.cfg.latent
        logits, mean, log_std = self.mdn(h).split([k, k * d, k * d], -1)
        std = log_std.clamp(-7, 5).exp() + self.cfg.min_std
        return logits.log_softmax(-1), mean.unflatten(-1, (k, d)), std.unflatten(-1, (k, d))

    def mixture_log_prob(self, h: Tensor, z: Tensor) -> Tensor:
        """``log p(z | h)`` ``(...)`` for ``h`` ``(..., hidden)`` and ``z`` ``(..., latent)``."""
        log_w, mean, std = self.mixture(h)
        z = z.unsqueeze(-2)
        per_dim = -0.5 * ((z - mean) / std).pow(2) - std.log() - HALF_LOG_2PI
        return torch.logsumexp(log_w + per_dim.sum(-1), -1)

    def _draw(self, h: Tensor, sample: bool, temperature: float) -> tuple[Tensor, Tensor]:
        """``z`` ``(N, latent)`` and ``[mean, std]`` ``(N, 2 * latent)``: a draw at
        ``temperature`` with its component's mean and std, or (``sample=False``) the mixture's
        mean with its overall std (the mean minimises the expected squared error)."""
        log_w, mean, std = self.mixture(h)
        if not sample:
            w = log_w.exp()[..., None]
            expected = (w * mean).sum(-2)
            var = (w * (std.pow(2) + mean.pow(2))).sum(-2) - expected.pow(2)
            return expected, torch.cat([expected, var.clamp_min(0).sqrt()], -1)
        k = torch.multinomial((log_w / temperature).softmax(-1), 1)
        index = k[..., None].expand(-1, 1, self.cfg.latent)
        mean, std = mean.gather(1, index).squeeze(1), std.gather(1, index).squeeze(1)
        z = mean + std * math.sqrt(temperature) * torch.randn_like(std)
        return z, torch.cat([mean, std], -1)

    # -- the interface ----------------------------------------------------------------------
    def initial(self, batch_size: int) -> LatentState:
        return LatentState(
            torch.zeros(batch_size, self.cfg.hidden, device=self.device),
            torch.zeros(batch_size, self.cfg.latent, device=self.device),
        )

    def _recur(self, z_prev: Tensor, action: Tensor, h0: Tensor) -> Tensor:
        """GRU states ``(B, T, hidden)`` from ``z_{t-1}``, ``a_t`` ``(B, T, .)`` and ``h0``."""
        out, _ = self.rnn(torch.cat([z_prev, action], -1), h0[None].contiguous())
        return out

    def observe(
        self,
        obs: Tensor,
        action: Tensor,
        state: LatentState | None = None,
        sample: bool = True,
        is_first: Tensor | None = None,
    ) -> LatentState:
        """Filters with the VAE's posterior mean (``sample`` is ignored) through one cuDNN-style
        recurrence, so a chunk holds one episode: ``is_first`` may be set in its first row only."""
        if is_first is not None and bool(is_first[:, 1:].any()):
            raise ValueError("mdnrnn filters one episode per chunk: is_first set past row 0")
        state = self.initial(obs.shape[0]) if state is None else state
        z = self.encode(obs, sample=False)
        z_prev = torch.cat([state.stoch[:, None], z[:, :-1]], 1)
        h = self._recur(z_prev, action.to(self.device, torch.float32), state.deter)
        return LatentState(h, z)

    def imagine(
        self,
        state: LatentState,
        actions: Tensor,
        sample: bool = True,
        temperature: float | None = None,
    ) -> LatentState:
        """Dream forward; ``temperature`` defaults to the config's."""
        tau = self.cfg.temperature if temperature is None else temperature
        actions = actions.to(self.device, torch.float32)
        h, z = state.deter[None].contiguous(), state.stoch
        states = []
        for action in actions.unbind(1):
            out, h = self.rnn(torch.cat([z, action], -1)[:, None], h)
            z, stats = self._draw(out[:, 0], sample, tau)
            states.append(LatentState(out[:, 0], z, stats))
        return LatentState.stack(states)

    def dream(self, actions: Tensor, temperature: float | None = None) -> Tensor:
        """Observations ``(N, H, *shape)`` dreamed from scratch under ``actions`` ``(N, H, A)``."""
        with torch.no_grad():
            return self.decode(
                self.imagine(self.initial(actions.shape[0]), actions, True, temperature)
            )

    def decode(self, states: LatentState) -> Tensor:
        z = states.stoch
        params = self.vae.decode(z.reshape(-1, z.shape[-1]))
        mean = self.vae.likelihood.mean(params).reshape(*z.shape[:-1], *self.spec.shape)
        return mean.float() if self.pixels else self.postprocess(mean)

    def reward(self, states: LatentState) -> Tensor:
        return self.reward_head(states.features)

    def continuation(self, states: LatentState) -> Tensor:
        return self.cont_head.probability(states.features)

    # -- training ---------------------------------------------------------------------------
    def loss(self, batch: Chunk) -> tuple[Tensor, dict[str, float]]:
        b, t = batch.shape
        frames = self._vae_input(batch.obs.flatten(0, 1))
        vae_loss, vae_metrics = self.vae.loss(frames)
        with torch.no_grad():
            z = self.vae.posterior(frames).sample().view(b, t, -1)
        z_prev = torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], 1)
        h = self._recur(z_prev, batch.action.to(self.device, torch.float32), self.initial(b).deter)
        mdn_nll = -self.mixture_log_prob(h, z).mean()
        features = torch.cat([h, z], -1)
        valid = ~batch.is_first.to(self.device)
        reward_nll = masked_mean(
            self.reward_head.nll(features, batch.reward.to(self.device)), valid
        )
        cont_nll = masked_mean(
            self.cont_head.nll(features, batch.terminated.to(self.device)), valid
        )
        total = vae_loss + mdn_nll + reward_nll + cont_nll
        metrics = {
            "losses/vae": float(vae_loss.detach()),
            "losses/mdn": float(mdn_nll.detach()),
            "losses/reward": float(reward_nll.detach()),
            "losses/cont": float(cont_nll.detach()),
            "world_model/vae_kl": vae_metrics["kl"],
            "world_model/vae_recon": vae_metrics["recon"],
        }
        return total, metrics

    @torch.no_grad()
    def elbo(self, batch: Chunk) -> Tensor:
        """Sequential ELBO per observation ``(B,)``: ``log p(o_t | z_t) + log p(z_t | h_t) -
        log q(z_t | o_t)`` with ``z_t ~ q``, averaged over time (the MDN as the prior)."""
        b, t = batch.shape
        frames = self._vae_input(batch.obs.flatten(0, 1))
        q = self.vae.posterior(frames)
        z = q.sample()
        log_px = self.vae.likelihood.log_prob(self.vae.decode(z), frames).view(b, t)
        log_q = q.log_prob(z).sum(-1).view(b, t)
        z = z.view(b, t, -1)
        z_prev = torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], 1)
        h = self._recur(z_prev, batch.action.to(self.device, torch.float32), self.initial(b).deter)
        elbo = log_px + self.mixture_log_prob(h, z) - log_q
        if not self.pixels:  # the VAE saw standardised vectors: back to observation units
            elbo = elbo - self.obs_std.log().sum()
        return elbo.mean(1)
