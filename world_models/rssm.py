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

The prior ``p(s_t | h_t)`` of a Gaussian latent can also be a flow or a diffusion model
(``stoch_prior``). Their KL has no closed form: it is estimated at the posterior's draw as
``log q(s | h, o) - log p(s | h)``, with ``-log p`` replaced by the diffusion model's
variational bound, which makes the diffusion prior's estimate an upper bound on the KL in
expectation (and the ELBO a lower bound).
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
from generative.diffusion.denoisers import MLPDenoiser
from generative.diffusion.gaussians import gaussian_log_density
from generative.diffusion.process import GaussianDiffusion
from generative.diffusion.schedule import NoiseSchedule
from generative.vae.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, mlp
from world_models.base import WorldModel, check, check_choice
from world_models.heads import HALF_LOG_2PI, ContinuationHead, RewardHead, masked_mean, read_out
from world_models.replay import Chunk
from world_models.state import LatentState

LATENTS = ("gaussian", "categorical")
STOCH_PRIORS = ("gaussian", "flow", "diffusion")
# Residual blocks of the diffusion prior's denoiser.
DIFFUSION_BLOCKS = 2
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
    """gaussian | flow | diffusion: the prior p(s | h) as a Gaussian, a Gaussian pushed
    through a learned RealNVP, or that Gaussian's location and scale applied to a denoising
    diffusion model conditioned on h (latent=gaussian only; the KL is then a one-sample
    estimate, for diffusion an upper bound on it through the variational bound)."""
    flow_layers: int = 4
    """Coupling layers of the flow prior."""
    flow_hidden: int = 64
    """Width of the flow prior's conditioners."""
    diffusion_steps: int = 10
    """Diffusion steps T of the diffusion prior: an imagined step runs a reverse chain of T
    denoiser calls, and the ELBO's bound has T terms."""
    diffusion_hidden: int = 128
    """Width of the diffusion prior's denoiser."""
    diffusion_terms: int = 3
    """KL terms of the diffusion prior's bound in a training estimate: one random step in
    each of K equal strata, weighted by its size (unbiased; 0: all T - 1; the ELBO always
    sums all). On the point-mass test task (600 steps, 2 seeds) one term's noise left the
    held-out ELBO near -3 nats against about 2 with three terms and 1.5-1.8 with the
    Gaussian prior; each term costs two denoiser calls on the whole batch."""
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
    decoder_final_conv: bool = False
    """Pixels: end the decoder with a 3x3 conv at full resolution; false lets its last
    transposed conv emit RGB (Dreamer's decoder; see ``ConvDecoder``)."""
    min_std: float = 0.1
    """Lower bound on the Gaussian latent's standard deviation."""
    obs_std: float = 0.1
    """Std of the Gaussian observation model, in network units (standardised vectors, pixels
    in [-0.5, 0.5]); 0 learns one per observation dimension. Not Dreamer's 1: a thin object
    (inverted-pendulum's pole) is worth about a nat of the frame's likelihood at 1, and the
    latent ignored it for thousands of updates (README, issue 7)."""
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
        check_choice("latent", self.latent, LATENTS)
        check_choice("stoch_prior", self.stoch_prior, STOCH_PRIORS)
        check(
            self.stoch_prior == "gaussian" or self.latent == "gaussian",
            "stoch_prior",
            self.stoch_prior,
            "gaussian with latent=categorical",
        )
        check(self.flow_layers >= 1, "flow_layers", self.flow_layers, ">= 1")
        check(self.flow_hidden >= 1, "flow_hidden", self.flow_hidden, ">= 1")
        check(self.diffusion_steps >= 1, "diffusion_steps", self.diffusion_steps, ">= 1")
        check(self.diffusion_hidden >= 1, "diffusion_hidden", self.diffusion_hidden, ">= 1")
        check(self.diffusion_terms >= 0, "diffusion_terms", self.diffusion_terms, ">= 0 (0: all)")
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


def diagonal_gaussian_log_prob(x: Tensor, stats: Tensor) -> Tensor:
    """``log N(x; mean, diag(std^2))`` ``(...)`` of ``x`` ``(..., S)`` with ``stats`` the mean
    then the std ``(..., 2S)``."""
    mean, std = stats.chunk(2, -1)
    return gaussian_log_density(x, mean, std.pow(2)).sum(-1)


def _gaussian_decoder(x0: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """``log p(x_0 | x_1)`` ``(N,)`` of a diffusion over continuous vectors ``(N, S)``."""
    return gaussian_log_density(x0, mean, var).sum(-1)


class DiffusionPrior(nn.Module):
    """A conditional DDPM ``p(x | c)`` over unit-scale latents ``x`` ``(N, S)`` given a
    context ``c`` ``(N, C)`` (the RSSM's ``h``): cosine schedule, v-prediction, reverse
    variance ``beta_t``.

    The denoiser's output layer starts at zero. v = 0 is the exact denoiser of
    ``x ~ N(0, I)`` (``E[v | x_t] = 0`` there) and with ``beta_t`` the reverse kernels are
    then exact, so a new prior's chain draws from the standard Gaussian and its bound on
    ``log N(x; 0, I)`` is tight in expectation.
    """

    def __init__(self, size: int, context: int, steps: int, hidden: int):
        super().__init__()
        net = MLPDenoiser(size, hidden, DIFFUSION_BLOCKS, cond_dim=context)
        nn.init.zeros_(net.out.weight)
        nn.init.zeros_(net.out.bias)
        self.diffusion = GaussianDiffusion(net, NoiseSchedule("cosine", steps), "v", "large")

    def forward(self, x: Tensor, context: Tensor, terms: int = 0) -> Tensor:
        """``(N,)`` the variational lower bound on ``log p(x | c)`` in nats, with all ``T - 1``
        KL terms (``terms = 0``, ``T`` denoiser calls) or an unbiased estimate of it from
        ``terms`` stratified ones (``terms + 1`` calls; see
        :meth:`~generative.diffusion.process.GaussianDiffusion.bound`). Either is a Monte Carlo
        estimate: each term draws its ``x_t``."""
        return -self.diffusion.bound(x, _gaussian_decoder, terms, context)

    def sample(self, start: Tensor, context: Tensor, ancestral: bool = True) -> Tensor:
        """``(N, S)`` the end of the reverse chain from ``x_T = start`` ``(N, S)``: ancestral
        sampling through all ``T`` steps, or DDIM with ``eta = 0`` (deterministic given
        ``start``). Differentiable in ``context``."""
        d = self.diffusion
        if not ancestral:
            return d.sample_ddim(start, d.timesteps, 0.0, cond=context)
        x = d.sample_ddpm(start, cond=context)
        # sample_ddpm stops at the decoder's mean; its noise makes this a draw of the density
        # the bound is of (without it a new prior's draws would have std sqrt(1 - beta_0)).
        return x + d.reverse_var[0].sqrt() * torch.randn_like(x)


class RSSM(WorldModel):
    """Recurrent state-space model over pixels ``(3, H, W)`` or vectors ``(D,)``.

    ``LatentState.deter`` is ``h`` ``(..., deter)``; ``stoch`` is ``s`` ``(..., S)`` with
    ``S = stoch`` (Gaussian) or ``stoch * classes`` (flattened one-hots); ``stats`` holds
    the Gaussian's mean and std ``(..., 2S)`` or the categoricals' log-probabilities
    ``(..., S)``.

    With a flow or diffusion prior, a prior state's ``stats`` are those of the Gaussian the
    prior is built on, not of ``p(s | h)`` itself: the flow's base (``s = f^{-1}(z)``,
    ``z ~ N(mean, std^2)``), or the location and scale of the diffusion prior,
    ``s = mean + std * x`` with ``x ~ p(x | h)`` the diffusion's draw, so the reverse chain
    starts from ``s_T ~ N(mean, std^2)``. Both priors start out as exactly that Gaussian.
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
            self.decoder: nn.Module = ConvDecoder(
                features, spec.shape, cfg.channels, final_conv=cfg.decoder_final_conv
            )
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
        self.prior_diffusion: DiffusionPrior | None = None
        if cfg.stoch_prior == "diffusion":
            self.prior_diffusion = DiffusionPrior(
                cfg.stoch, cfg.deter, cfg.diffusion_steps, cfg.diffusion_hidden
            )
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
        """Entropy of the distribution each ``stoch`` was drawn from, ``(*batch,)``. With a
        flow or diffusion prior, of the Gaussian its ``stats`` give (an approximation: the
        flow's log-determinant and the diffusion's reshaping of that Gaussian are left out)."""
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

    def _transition(self, state: LatentState, action: Tensor) -> tuple[Tensor, Tensor]:
        """``h`` ``(N, deter)`` after ``action`` ``(N, A)`` and the prior's stats ``(N, P)``."""
        x = self.img_in(torch.cat([state.stoch, action], -1))
        deter = self.gru(F.silu(x, inplace=not torch.is_grad_enabled()), state.deter)
        return deter, self._stats(self.img_out(deter))

    def _prior_draw(self, deter: Tensor, stats: Tensor, sample: bool) -> Tensor:
        """``s ~ p(s | h)`` ``(N, S)`` from ``h`` ``(N, deter)`` and the prior's stats; when not
        ``sample``: the Gaussian's mode, pushed through the flow, or the deterministic reverse
        chain of the diffusion from ``x_T = 0``."""
        if self.prior_diffusion is not None:
            mean, std = stats.chunk(2, -1)
            start = torch.randn_like(mean) if sample else torch.zeros_like(mean)
            return mean + std * self.prior_diffusion.sample(start, deter, ancestral=sample)
        stoch = self._draw(stats, sample)
        if self.prior_flow is not None:
            stoch = self.prior_flow.inverse(stoch)
        return stoch

    def img_step(self, state: LatentState, action: Tensor, sample: bool = True) -> LatentState:
        """The prior step: ``state`` ``(N, .)``, ``action`` ``(N, A)`` -> ``(N, .)``. With the
        diffusion prior a draw runs the reverse chain: ``diffusion_steps`` denoiser calls."""
        deter, stats = self._transition(state, action)
        return LatentState(deter, self._prior_draw(deter, stats, sample), stats)

    def obs_step(
        self,
        state: LatentState,
        action: Tensor,
        embed: Tensor,
        sample: bool = True,
        draw_prior: bool = True,
    ) -> tuple[LatentState, LatentState]:
        """One filtering step from an embedded observation ``(N, E)``: (posterior, prior).

        ``draw_prior=False`` leaves out the flow's or the diffusion's part of the prior's
        draw: the prior state's ``stoch`` is then a draw of the Gaussian its ``stats`` give.
        The loss reads only the prior's stats, and a diffusion draw is a whole reverse chain.
        """
        deter, prior_stats = self._transition(state, action)
        if draw_prior:
            prior_stoch = self._prior_draw(deter, prior_stats, sample)
        else:
            prior_stoch = self._draw(prior_stats, sample)
        stats = self._stats(self.obs_out(torch.cat([deter, embed], -1)))
        post = LatentState(deter, self._draw(stats, sample), stats)
        return post, LatentState(deter, prior_stoch, prior_stats)

    def encode(self, obs: Tensor) -> Tensor:
        """Observations ``(B, T, *shape)`` -> embeddings ``(B, T, E)``."""
        x = self.preprocess(obs)
        return self.encoder(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def filter(
        self,
        obs: Tensor,
        action: Tensor,
        state: LatentState | None = None,
        sample: bool = True,
        draw_prior: bool = True,
        is_first: Tensor | None = None,
    ) -> tuple[LatentState, LatentState]:
        """Posterior and prior states ``(B, T, .)`` for ``obs`` ``(B, T, *shape)`` and the
        actions ``(B, T, A)`` that led to them (``draw_prior``: see :meth:`obs_step`); the
        state restarts from :meth:`initial` at rows where ``is_first`` ``(B, T)`` is set."""
        embed = self.encode(obs)
        action = action.to(self.device, torch.float32)
        state = self.initial(obs.shape[0]) if state is None else state
        going_on = None if is_first is None else (~is_first).to(self.device, torch.float32)
        posts, priors = [], []
        for t in range(obs.shape[1]):
            if going_on is not None:  # the initial state is zeros
                state = state.map(lambda x, keep=going_on[:, t, None]: x * keep)
            state, prior = self.obs_step(state, action[:, t], embed[:, t], sample, draw_prior)
            posts.append(state)
            priors.append(prior)
        return LatentState.stack(posts), LatentState.stack(priors)

    def observe(
        self,
        obs: Tensor,
        action: Tensor,
        state: LatentState | None = None,
        sample: bool = True,
        is_first: Tensor | None = None,
    ) -> LatentState:
        return self.filter(obs, action, state, sample, draw_prior=False, is_first=is_first)[0]

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
        base = diagonal_gaussian_log_prob(z, stats.reshape(-1, stats.shape[-1]))
        return (base + log_det).reshape(stoch.shape[:-1])

    def diffusion_prior_log_prob(
        self, stoch: Tensor, stats: Tensor, deter: Tensor, frozen: bool = False, terms: int = 0
    ) -> Tensor:
        """A lower bound on ``log p(s | h)`` ``(...)`` under the diffusion prior, for ``s``
        ``(..., S)``, the prior's ``stats`` ``(..., 2S)`` and ``h`` ``(..., deter)``.

        ``s = mean + std * x`` with ``x ~ p(x | h)``, so ``log p(s | h) = log p(x | h) -
        sum(log std)``, and ``log p(x | h)`` is bounded below by the diffusion's variational
        bound (see :meth:`DiffusionPrior.forward` for ``terms``). ``frozen`` stops the
        gradient to the denoiser's weights (not to ``stoch``, ``stats`` or ``deter``).
        """
        assert self.prior_diffusion is not None
        prior = self.prior_diffusion
        mean, std = stats.reshape(-1, stats.shape[-1]).chunk(2, -1)
        x = (stoch.reshape(-1, stoch.shape[-1]) - mean) / std
        context = deter.reshape(-1, deter.shape[-1])
        if frozen:
            params = {k: v.detach() for k, v in prior.named_parameters()}
            log_p = torch.func.functional_call(prior, params, (x, context, terms))
        else:
            log_p = prior(x, context, terms)
        return (log_p - std.log().sum(-1)).reshape(stoch.shape[:-1])

    def _prior_log_prob(
        self, stoch: Tensor, prior: LatentState, frozen: bool, terms: int
    ) -> Tensor:
        """``log p(s | h)`` ``(...)`` under the flow prior, or its lower bound under the
        diffusion prior, at the prior states ``prior``."""
        assert prior.stats is not None
        if self.prior_flow is not None:
            return self.flow_prior_log_prob(stoch, prior.stats, frozen)
        return self.diffusion_prior_log_prob(stoch, prior.stats, prior.deter, frozen, terms)

    def _sample_kl(
        self, post: LatentState, prior: LatentState, terms: int
    ) -> tuple[Tensor, Tensor]:
        """KL balancing for the flow and diffusion priors (see :func:`kl_balanced`) with the
        one-sample estimate ``log q(s | h, o) - log p(s | h)`` at the posterior's draw ``s``.

        The "dyn" part trains the prior at ``sg(s)``; the "rep" part trains the posterior
        through ``s`` with the prior's weights and states frozen. With the diffusion prior
        ``-log p`` is its variational bound (``>= -log p``), so the estimate's expectation is
        an upper bound on ``KL[q || p]`` (``terms``: see :meth:`DiffusionPrior.forward`).
        """
        assert post.stats is not None
        alpha, free = self.cfg.kl_balance, self.cfg.free_nats
        s, q = post.stoch, post.stats
        log_q = diagonal_gaussian_log_prob
        dyn = log_q(s.detach(), q.detach()) - self._prior_log_prob(s.detach(), prior, False, terms)
        rep = log_q(s, q) - self._prior_log_prob(s, prior.detach(), True, terms)
        loss = alpha * dyn.clamp_min(free).mean() + (1 - alpha) * rep.clamp_min(free).mean()
        return loss, dyn.detach()

    def _terms(self, batch: Chunk, full_bound: bool = False) -> dict[str, Tensor]:
        """The loss terms; ``full_bound``: all of the diffusion prior's bound terms (for the
        ELBO) rather than ``diffusion_terms`` of them (for training)."""
        post, prior = self.filter(
            batch.obs, batch.action, draw_prior=False, is_first=batch.is_first
        )
        target = self.preprocess(batch.obs)
        recon = self._decode_raw(post.features)
        recon_nll = self.observation_nll(recon, target)
        assert post.stats is not None and prior.stats is not None
        if self.cfg.stoch_prior == "gaussian":
            kl_loss, kl = kl_balanced(
                self.kl, post.stats, prior.stats, self.cfg.kl_balance, self.cfg.free_nats
            )
        else:
            terms = 0 if full_bound else self.cfg.diffusion_terms
            kl_loss, kl = self._sample_kl(post, prior, terms)
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
        """Evidence lower bound per observation in nats, one value per chunk ``(B,)``; with
        the diffusion prior a stochastic one, through all the terms of each step's
        variational bound (training reports an estimate from ``diffusion_terms`` of them)."""
        t = self._terms(batch, full_bound=True)
        elbo = -(t["recon_nll"] + t["kl"]).mean(1)
        if not self.pixels:  # the decoder saw standardised vectors: back to observation units
            elbo = elbo - self.obs_std.log().sum()
        return elbo
