"""The recurrent state-space model (PlaNet / Dreamer): a GRU path plus a stochastic latent.

At each step the deterministic state ``h_t = GRU(h_{t-1}, [s_{t-1}, a_t])`` summarises
the past, the prior ``p(s_t | h_t)`` predicts the stochastic state and the posterior
``q(s_t | h_t, o_t)`` corrects it with the observation. ``s_t`` is a diagonal Gaussian or a
vector of categoricals (one-hot samples with straight-through gradients). An observation
decoder, a reward head and a continuation head read the features ``[h_t, s_t]``.

The loss is the negative ELBO with KL balancing and free bits (DreamerV2/V3):

    L = E_q[-log p(o_t | h_t, s_t)] + reward and continuation NLL
        + kl_scale * (alpha * max(free, KL[sg(q) || p]) + (1 - alpha) * max(free, KL[q || sg(p)]))

where ``sg`` stops gradients and ``max`` applies per time step, before the mean.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.base import DataSpec
from generative.vae.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, mlp
from world_models.base import WorldModel, check
from world_models.heads import HALF_LOG_2PI, ContinuationHead, RewardHead, masked_mean, read_out
from world_models.replay import Chunk
from world_models.state import LatentState

LATENTS = ("gaussian", "categorical")
STOCH_PRIORS = ("gaussian", "flow")
# Floor of a learned observation std: without one, a perfectly predictable dimension
# (a fixed target) would drive its log-likelihood to infinity.
MIN_OBS_STD = 1e-2


@dataclasses.dataclass(frozen=True)
class RSSMConfig:
    """Sizes and loss weights of the RSSM (defaults: a small Dreamer for 64x64 pixels)."""

    deter: int = 200
    """Size of the deterministic GRU state h."""
    stoch: int = 30
    """Gaussian latent size, or the number of categorical variables."""
    latent: str = "gaussian"
    """gaussian | categorical (one-hot samples, straight-through gradients)."""
    stoch_prior: str = "gaussian"
    """gaussian | flow: the prior p(s | h) as a Gaussian, or a Gaussian pushed through a
    learned RealNVP (latent=gaussian only; its KL is then a one-sample estimate)."""
    flow_layers: int = 4
    """Coupling layers of the flow prior."""
    flow_hidden: int = 64
    """Width of the flow prior's conditioners."""
    classes: int = 16
    """Classes of each categorical variable (latent=categorical)."""
    hidden: int = 200
    """Width of the transition's input and output layers."""
    embed: int = 256
    """Size of the observation embedding."""
    mlp: tuple[int, ...] = (256, 256)
    """Hidden widths of the MLP encoder and decoder (vector observations)."""
    head: tuple[int, ...] = (256, 256)
    """Hidden widths of the reward and continuation heads."""
    channels: tuple[int, ...] = (32, 64, 128, 256)
    """Conv stages of the pixel encoder and decoder, each halving the image size."""
    min_std: float = 0.1
    """Lower bound on the Gaussian latent's standard deviation."""
    obs_std: float = 1.0
    """Std of the Gaussian observation model, in network units (standardised vectors, pixels
    in [-0.5, 0.5]); 0 learns one per observation dimension."""
    unimix: float = 0.01
    """Share of the uniform distribution mixed into categorical latents."""
    layer_norm: bool = True
    """Normalise the GRU's gates (stabilises long sequences)."""
    kl_balance: float = 0.8
    """alpha: share of the KL gradient that trains the prior rather than the posterior."""
    free_nats: float = 1.0
    """Free bits: the KL of a step below this many nats is not penalised."""
    kl_scale: float = 1.0
    """Weight of the KL term."""
    reward_scale: float = 1.0
    """Weight of the reward negative log-likelihood."""
    cont_scale: float = 1.0
    """Weight of the continuation negative log-likelihood."""

    def __post_init__(self) -> None:
        for name in ("deter", "stoch", "hidden", "embed"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        check(self.latent in LATENTS, "latent", self.latent, "one of " + ", ".join(LATENTS))
        check(
            self.stoch_prior in STOCH_PRIORS,
            "stoch_prior",
            self.stoch_prior,
            "one of " + ", ".join(STOCH_PRIORS),
        )
        check(
            self.stoch_prior == "gaussian" or self.latent == "gaussian",
            "stoch_prior",
            self.stoch_prior,
            "gaussian with latent=categorical",
        )
        check(self.flow_layers >= 1, "flow_layers", self.flow_layers, ">= 1")
        check(self.flow_hidden >= 1, "flow_hidden", self.flow_hidden, ">= 1")
        check(self.classes >= 2, "classes", self.classes, ">= 2")
        check(all(h >= 1 for h in self.mlp), "mlp", self.mlp, "positive widths")
        check(all(h >= 1 for h in self.head), "head", self.head, "positive widths")
        check(
            len(self.channels) > 0 and all(c >= 1 for c in self.channels),
            "channels",
            self.channels,
            "at least one positive width",
        )
        check(self.min_std > 0, "min_std", self.min_std, "> 0")
        check(self.obs_std >= 0, "obs_std", self.obs_std, ">= 0 (0: learned)")
        check(0 <= self.unimix < 1, "unimix", self.unimix, "in [0, 1)")
        check(0 <= self.kl_balance <= 1, "kl_balance", self.kl_balance, "in [0, 1]")
        for name in ("free_nats", "kl_scale", "reward_scale", "cont_scale"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")


class GRUCell(nn.Module):
    """Dreamer's GRU: one linear map of ``[x, h]`` to the three gates, optionally normalised.

    ``x`` ``(N, I)``, ``h`` ``(N, H)`` -> ``(N, H)``. The update gate starts biased towards
    keeping the state (``sigmoid(u - 1)``), which helps gradients over long sequences.
    """

    def __init__(self, in_features: int, size: int, layer_norm: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_features + size, 3 * size, bias=not layer_norm)
        self.norm = nn.LayerNorm(3 * size) if layer_norm else nn.Identity()

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        # tanh(x) = 2 sigmoid(2x) - 1: sigmoid is several times faster on CPU here.
        cand = 2 * torch.sigmoid(2 * torch.sigmoid(reset) * cand) - 1
        update = torch.sigmoid(update - 1.0)
        return h + update * (cand - h)


def kl_balanced(
    kl: Callable[[Tensor, Tensor], Tensor],
    post: Tensor,
    prior: Tensor,
    alpha: float,
    free_nats: float,
) -> tuple[Tensor, Tensor]:
    """KL balancing with free bits.

    ``kl(q_stats, p_stats) -> (...)`` is the divergence of the two distributions given by
    their parameters ``(..., P)``. Returns the loss
    ``alpha * mean(max(free, KL[sg(q) || p])) + (1 - alpha) * mean(max(free, KL[q || sg(p)]))``
    and the plain ``KL[q || p]`` per element ``(...)`` (detached), for logging and the ELBO.
    """
    dyn = kl(post.detach(), prior)
    rep = kl(post, prior.detach())
    loss = alpha * dyn.clamp_min(free_nats).mean() + (1 - alpha) * rep.clamp_min(free_nats).mean()
    return loss, dyn.detach()


class RSSM(WorldModel):
    """Recurrent state-space model over pixels ``(3, H, W)`` or vectors ``(D,)``.

    ``LatentState.deter`` is ``h`` ``(..., deter)``; ``stoch`` is ``s`` ``(..., S)`` with
    ``S = stoch`` (Gaussian) or ``stoch * classes`` (flattened one-hots); ``stats`` holds
    the Gaussian's mean and std ``(..., 2S)`` or the categoricals' log-probabilities
    ``(..., S)``.
    """

    Config = RSSMConfig
    SMOKE: ClassVar[dict[str, Any]] = {
        "deter": 16,
        "stoch": 4,
        "classes": 4,
        "hidden": 16,
        "embed": 16,
        "mlp": (32,),
        "head": (16,),
        "channels": (4, 4, 8, 8),
    }
    # State vectors need far less than pixels; small sizes keep planning fast on a CPU.
    STATE: ClassVar[dict[str, Any]] = {
        "deter": 64,
        "stoch": 16,
        "hidden": 64,
        "embed": 64,
        "mlp": (128, 128),
        "head": (64, 64),
        # A learned std lets reconstructions of a few numbers become precise.
        "obs_std": 0.0,
    }
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 5000, "batch_size": 16, "seq_len": 50, "lr": 6e-4}

    def __init__(self, cfg: RSSMConfig, spec: DataSpec, action_dim: int):
        super().__init__(cfg, spec, action_dim)
        self.categorical = cfg.latent == "categorical"
        self.stoch_size = cfg.stoch * cfg.classes if self.categorical else cfg.stoch
        stats = self.stoch_size if self.categorical else 2 * cfg.stoch
        features = cfg.deter + self.stoch_size
        if self.pixels:
            self.encoder: nn.Module = ConvEncoder(spec.shape, cfg.embed, cfg.channels)
            self.decoder: nn.Module = ConvDecoder(features, spec.shape, cfg.channels)
        else:
            self.encoder = MLPEncoder(spec.shape, cfg.embed, cfg.mlp)
            self.decoder = MLPDecoder(features, spec.shape, cfg.mlp)
        self.img_in = nn.Linear(self.stoch_size + action_dim, cfg.hidden)
        self.gru = GRUCell(cfg.hidden, cfg.deter, cfg.layer_norm)
        self.img_out = mlp(cfg.deter, (cfg.hidden,), stats)
        self.obs_out = mlp(cfg.deter + cfg.embed, (cfg.hidden,), stats)
        self.reward_head = RewardHead(features, cfg.head)
        self.cont_head = ContinuationHead(features, cfg.head)
        self.obs_log_std = nn.Parameter(torch.zeros(spec.shape)) if cfg.obs_std == 0 else None
        self.prior_flow: nn.Module | None = None
        if cfg.stoch_prior == "flow":
            from generative.flows.density import FlowDensity

            density = FlowDensity(
                cfg.stoch, "realnvp", hidden=cfg.flow_hidden, couplings=cfg.flow_layers
            )
            self.prior_flow = density.model.flow  # data -> base: (N, S) -> (z, log|dz/ds|)

    @property
    def feature_size(self) -> int:
        return self.cfg.deter + self.stoch_size

    # -- the stochastic latent ---------------------------------------------------------------
    def _stats(self, raw: Tensor) -> Tensor:
        """Network output to distribution parameters (see the class docstring)."""
        if self.categorical:
            logits = raw.unflatten(-1, (self.cfg.stoch, self.cfg.classes))
            probs = logits.softmax(-1)
            if self.cfg.unimix:
                probs = (1 - self.cfg.unimix) * probs + self.cfg.unimix / self.cfg.classes
            return probs.log().flatten(-2)
        mean, std = raw.chunk(2, -1)
        # DreamerV1's bounded std (2 sigmoid(x / 2)); much cheaper than softplus on CPU.
        return torch.cat([mean, 2 * torch.sigmoid(std / 2) + self.cfg.min_std], -1)

    def _draw(self, stats: Tensor, sample: bool) -> Tensor:
        """A draw of ``s`` (or its mode when ``sample`` is false) ``(..., S)``."""
        if self.categorical:
            logp = stats.unflatten(-1, (self.cfg.stoch, self.cfg.classes))
            if sample:
                gumbel = -torch.log(-torch.log(torch.rand_like(logp).clamp(1e-20, 1.0)))
                index = (logp + gumbel).argmax(-1)
            else:
                index = logp.argmax(-1)
            one_hot = F.one_hot(index, self.cfg.classes).to(logp.dtype)
            probs = logp.exp()
            return (one_hot + probs - probs.detach()).flatten(-2)
        mean, std = stats.chunk(2, -1)
        return mean + std * torch.randn_like(std) if sample else mean

    def kl(self, post: Tensor, prior: Tensor) -> Tensor:
        """``KL[q || p]`` summed over the latent, ``(...)``, from stats ``(..., P)``."""
        if self.categorical:
            q = post.unflatten(-1, (self.cfg.stoch, self.cfg.classes))
            p = prior.unflatten(-1, (self.cfg.stoch, self.cfg.classes))
            return (q.exp() * (q - p)).sum((-2, -1))
        qm, qs = post.chunk(2, -1)
        pm, ps = prior.chunk(2, -1)
        ratio = (qs / ps).pow(2)
        return 0.5 * (ratio + ((qm - pm) / ps).pow(2) - 1 - ratio.log()).sum(-1)

    def entropy(self, states: LatentState) -> Tensor:
        """Entropy of the distribution each ``stoch`` was drawn from, ``(*batch,)`` (with
        the flow prior: of its Gaussian base)."""
        assert states.stats is not None
        if self.categorical:
            logp = states.stats
            return -(logp.exp() * logp).sum(-1)
        std = states.stats.chunk(2, -1)[1]
        return (std.log() + 0.5 + HALF_LOG_2PI).sum(-1)

    # -- transitions ------------------------------------------------------------------------
    def initial(self, batch_size: int) -> LatentState:
        zeros = torch.zeros(batch_size, self.cfg.deter, device=self.device)
        return LatentState(zeros, torch.zeros(batch_size, self.stoch_size, device=self.device))

    def img_step(self, state: LatentState, action: Tensor, sample: bool = True) -> LatentState:
        """The prior step: ``state`` ``(N, .)``, ``action`` ``(N, A)`` -> ``(N, .)``."""
        x = self.img_in(torch.cat([state.stoch, action], -1))
        deter = self.gru(F.silu(x, inplace=not torch.is_grad_enabled()), state.deter)
        stats = self._stats(self.img_out(deter))
        stoch = self._draw(stats, sample)
        if self.prior_flow is not None:  # stats stay those of the Gaussian base
            stoch = self.prior_flow.inverse(stoch)
        return LatentState(deter, stoch, stats)

    def obs_step(
        self, state: LatentState, action: Tensor, embed: Tensor, sample: bool = True
    ) -> tuple[LatentState, LatentState]:
        """One filtering step from an embedded observation ``(N, E)``: (posterior, prior)."""
        prior = self.img_step(state, action, sample)
        stats = self._stats(self.obs_out(torch.cat([prior.deter, embed], -1)))
        return LatentState(prior.deter, self._draw(stats, sample), stats), prior

    def encode(self, obs: Tensor) -> Tensor:
        """Observations ``(B, T, *shape)`` -> embeddings ``(B, T, E)``."""
        x = self.preprocess(obs)
        return self.encoder(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def filter(
        self, obs: Tensor, action: Tensor, state: LatentState | None = None, sample: bool = True
    ) -> tuple[LatentState, LatentState]:
        """Posterior and prior states ``(B, T, .)`` for ``obs`` ``(B, T, *shape)`` and the
        actions ``(B, T, A)`` that led to them."""
        embed = self.encode(obs)
        action = action.to(self.device, torch.float32)
        state = self.initial(obs.shape[0]) if state is None else state
        posts, priors = [], []
        for t in range(obs.shape[1]):
            state, prior = self.obs_step(state, action[:, t], embed[:, t], sample)
            posts.append(state)
            priors.append(prior)
        return LatentState.stack(posts), LatentState.stack(priors)

    def observe(
        self, obs: Tensor, action: Tensor, state: LatentState | None = None, sample: bool = True
    ) -> LatentState:
        return self.filter(obs, action, state, sample)[0]

    def imagine(self, state: LatentState, actions: Tensor, sample: bool = True) -> LatentState:
        actions = actions.to(self.device, torch.float32)
        states = []
        for action in actions.unbind(1):
            state = self.img_step(state, action, sample)
            states.append(state)
        return LatentState.stack(states)

    # -- read-outs --------------------------------------------------------------------------
    def _decode_raw(self, features: Tensor) -> Tensor:
        batch = features.shape[:-1]
        return self.decoder(features.reshape(-1, features.shape[-1])).unflatten(0, batch)

    def decode(self, states: LatentState) -> Tensor:
        return self.postprocess(self._decode_raw(states.features))

    def reward(self, states: LatentState) -> Tensor:
        return self._read_out(self.reward_head, states)

    def continuation(self, states: LatentState) -> Tensor:
        return self._read_out(self.cont_head.probability, states)

    def _read_out(self, head: Callable[[Tensor], Tensor], states: LatentState) -> Tensor:
        """``head`` on the features of ``states`` ``(*batch, .)`` -> ``(*batch,)`` (in blocks
        without autograd: :func:`world_models.heads.read_out`)."""
        return read_out(head, states.deter, states.stoch)

    # -- training ---------------------------------------------------------------------------
    def observation_nll(self, mean: Tensor, target: Tensor) -> Tensor:
        """``-log N(target; mean, obs_std^2)`` summed over an observation: ``(B, T)``."""
        if self.obs_log_std is None:
            log_std = torch.full((), math.log(self.cfg.obs_std), device=mean.device)
        else:
            log_std = self.obs_log_std.clamp_min(math.log(MIN_OBS_STD))
        z = (mean - target) * torch.exp(-log_std)
        nll = 0.5 * z.pow(2) + log_std + HALF_LOG_2PI
        return nll.flatten(2).sum(-1)

    def flow_prior_log_prob(self, stoch: Tensor, stats: Tensor, frozen: bool = False) -> Tensor:
        """``log p(s | h)`` ``(...)`` under the flow prior, from the base's ``stats``;
        ``frozen`` stops the gradient to the flow's weights (not to ``stoch``)."""
        assert self.prior_flow is not None
        flow = self.prior_flow
        flat = stoch.reshape(-1, stoch.shape[-1])
        if frozen:
            params = {k: v.detach() for k, v in flow.named_parameters()}
            z, log_det = torch.func.functional_call(flow, params, (flat,))
        else:
            z, log_det = flow(flat)
        mean, std = stats.reshape(-1, stats.shape[-1]).chunk(2, -1)
        base = (-0.5 * ((z - mean) / std).pow(2) - std.log() - HALF_LOG_2PI).sum(-1)
        return (base + log_det).reshape(stoch.shape[:-1])

    def _flow_kl(self, post: LatentState, prior_stats: Tensor) -> tuple[Tensor, Tensor]:
        """KL balancing for the flow prior with the one-sample estimate
        ``log q(s) - log p(s | h)`` at the posterior's draw ``s`` (see :func:`kl_balanced`)."""
        assert post.stats is not None
        alpha, free = self.cfg.kl_balance, self.cfg.free_nats

        def log_q(s: Tensor, stats: Tensor) -> Tensor:
            mean, std = stats.chunk(2, -1)
            return (-0.5 * ((s - mean) / std).pow(2) - std.log() - HALF_LOG_2PI).sum(-1)

        s, q = post.stoch, post.stats
        dyn = log_q(s.detach(), q.detach()) - self.flow_prior_log_prob(s.detach(), prior_stats)
        rep = log_q(s, q) - self.flow_prior_log_prob(s, prior_stats.detach(), frozen=True)
        loss = alpha * dyn.clamp_min(free).mean() + (1 - alpha) * rep.clamp_min(free).mean()
        return loss, dyn.detach()

    def _terms(self, batch: Chunk) -> dict[str, Tensor]:
        post, prior = self.filter(batch.obs, batch.action)
        target = self.preprocess(batch.obs)
        recon = self._decode_raw(post.features)
        recon_nll = self.observation_nll(recon, target)
        assert post.stats is not None and prior.stats is not None
        if self.prior_flow is None:
            kl_loss, kl = kl_balanced(
                self.kl, post.stats, prior.stats, self.cfg.kl_balance, self.cfg.free_nats
            )
        else:
            kl_loss, kl = self._flow_kl(post, prior.stats)
        # A chunk's first row of an episode has no reward or termination to predict.
        valid = ~batch.is_first.to(self.device)
        reward_nll = masked_mean(
            self.reward_head.nll(post.features, batch.reward.to(self.device)), valid
        )
        cont_nll = masked_mean(
            self.cont_head.nll(post.features, batch.terminated.to(self.device)), valid
        )
        return {
            "recon_nll": recon_nll,
            "kl": kl,
            "kl_loss": kl_loss,
            "reward_nll": reward_nll,
            "cont_nll": cont_nll,
        }

    def loss(self, batch: Chunk) -> tuple[Tensor, dict[str, float]]:
        t = self._terms(batch)
        cfg = self.cfg
        total = (
            t["recon_nll"].mean()
            + cfg.kl_scale * t["kl_loss"]
            + cfg.reward_scale * t["reward_nll"]
            + cfg.cont_scale * t["cont_nll"]
        )
        metrics = {
            "losses/recon": float(t["recon_nll"].mean().detach()),
            "losses/kl": float(t["kl_loss"].detach()),
            "losses/reward": float(t["reward_nll"].detach()),
            "losses/cont": float(t["cont_nll"].detach()),
            "world_model/kl": float(t["kl"].mean()),
            "world_model/elbo": float(-(t["recon_nll"].detach() + t["kl"]).mean()),
        }
        return total, metrics

    @torch.no_grad()
    def elbo(self, batch: Chunk) -> Tensor:
        t = self._terms(batch)
        elbo = -(t["recon_nll"] + t["kl"]).mean(1)
        if not self.pixels:  # the decoder saw standardised vectors: back to observation units
            elbo = elbo - self.obs_std.log().sum()
        return elbo
