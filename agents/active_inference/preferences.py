"""Preference sources: ``log p̃`` of an imagined step, in observation or latent space.

Every source is an ``nn.Module`` (its goals and fitted densities are saved with the agent)
called on one :class:`~agents.active_inference.imagination.Imagined` step of ``R`` rows and
returning ``log p̃`` ``(R,)`` as a torch tensor (differentiable where the source is, so the
amortised policy can learn through it). ``needs`` says what imagination must compute.

- ``task``: the task's preferred-observation density (:mod:`envs.preferences`) of the
  predicted (decoded) state observation.
- ``reward``: predicted reward as a log-preference, ``log p̃ = r / temperature``.
- ``pixel-goal``: a goal image, ``log p̃(o) = sum_pixels log Laplace(o; g, b)`` (or Gaussian)
  of the decoded observation, intensities in ``[0, 1]``.
- ``latent-goal``: similarity of the latent state to the encoded goal,
  ``log p̃(s) = sum_d log N(s_d; g_d, scale²)``.
- ``contrastive``: InfoNCE (Contrastive Active Inference, Mazzaglia et al. 2021): a state
  embedding ``f(s)`` and an observation embedding ``e(o)`` are trained to match, and
  ``log p̃ = f(s)·e(g) / τ - log sum_{o ∈ {g} ∪ negatives} exp(f(s)·e(o) / τ)``.
- ``flow``: an exact density fitted by a RealNVP to demonstration states
  (:class:`~world_models.priors.LatentPrior`), of the predicted state observation.

Goal sources may change the goal every episode (:class:`GoalSampler`): the task's own
goal written into the episode's first observation, a set of goal observations (fixed or
one drawn per episode), or draws from a diffusion prior fitted to demonstration states.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Laplace, Normal

from agents.active_inference.imagination import Imagined, Imaginer, Needs
from world_models.base import PIXEL_LEVELS, WorldModel
from world_models.priors import LatentPrior, LatentPriorConfig
from world_models.state import LatentState

SOURCES = ("task", "reward", "pixel-goal", "latent-goal", "contrastive", "flow")
GOAL_SOURCES = ("task", "file", "diffusion")
GOAL_SOURCES_NEEDED = ("pixel-goal", "latent-goal", "contrastive")
PIXEL_LIKELIHOODS = ("laplace", "gaussian")


class PreferenceSource(nn.Module):
    """Base class: ``forward(step) -> log p̃`` ``(R,)``; goal sources take :meth:`set_goal`."""

    needs = Needs(obs=True)
    uses_goal = False

    def set_goal(self, goal_obs: Tensor) -> None:
        """Prefer ``goal_obs`` ``(*obs_shape)`` from now on (goal sources only)."""

    def refresh(self) -> None:
        """Recompute what depends on the world model's weights (after it trained)."""

    def loss(self, states: LatentState, obs: Tensor) -> tuple[Tensor, dict[str, float]] | None:
        """A training loss on filtered states ``(B, .)`` and their observations
        ``(B, *shape)``, for sources that learn (``None`` for the others)."""
        return None


class TaskPreference(PreferenceSource):
    """The task's ``log p̃(o)`` (``envs.preferences``) of the predicted state observation."""

    def __init__(self, preference: Any):
        super().__init__()
        self.preference = preference

    def forward(self, step: Imagined) -> Tensor:
        assert step.obs is not None
        return self.preference.log_preference(step.obs).to(step.obs.dtype)


class RewardPreference(PreferenceSource):
    """``log p̃ = r̂ / temperature``: reward as an (unnormalised) log-preference."""

    needs = Needs(obs=False, reward=True)

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, step: Imagined) -> Tensor:
        assert step.reward is not None
        return step.reward / self.temperature


class PixelGoal(PreferenceSource):
    """A goal image scored in pixel space: ``sum_pixels log p(o / 255; g / 255, scale)`` with a
    Laplace (``b = scale``) or Gaussian (``σ = scale``) per pixel."""

    uses_goal = True

    def __init__(self, obs_shape: tuple[int, ...], scale: float = 0.1, likelihood: str = "laplace"):
        super().__init__()
        if likelihood not in PIXEL_LIKELIHOODS:
            allowed = ", ".join(PIXEL_LIKELIHOODS)
            raise ValueError(f"invalid pixel likelihood={likelihood!r}: must be one of {allowed}")
        self.scale, self.likelihood = float(scale), likelihood
        self.register_buffer("goal", torch.zeros(obs_shape))

    def set_goal(self, goal_obs: Tensor) -> None:
        self.goal.copy_(goal_obs.to(self.goal.device).float().reshape(self.goal.shape))

    def forward(self, step: Imagined) -> Tensor:
        assert step.obs is not None
        x = step.obs.flatten(1) / PIXEL_LEVELS
        goal = self.goal.reshape(1, -1) / PIXEL_LEVELS
        scale = torch.tensor(self.scale, device=x.device)
        dist = Laplace(goal, scale) if self.likelihood == "laplace" else Normal(goal, scale)
        return dist.log_prob(x).sum(-1)


@torch.no_grad()
def encode(model: WorldModel, obs: Tensor) -> LatentState:
    """Posterior modes ``(N, .)`` of observations ``(N, *shape)`` each filtered alone."""
    action = torch.zeros(obs.shape[0], 1, model.action_dim, device=model.device)
    return model.observe(obs[:, None].to(model.device), action, sample=False)[:, 0]


class LatentGoal(PreferenceSource):
    """Similarity to the encoded goal: ``log p̃(s) = sum_d log N(s_d; g_d, scale²)`` with ``g``
    the stochastic part of the goal observation's posterior mode."""

    needs = Needs(obs=False)
    uses_goal = True

    def __init__(self, model: WorldModel, scale: float = 1.0):
        super().__init__()
        self.model = [model]  # a list: not a submodule, its weights are saved by the agent
        self.scale = float(scale)
        self.register_buffer("goal", torch.zeros(model.spec.shape))
        self._latent: Tensor | None = None

    def set_goal(self, goal_obs: Tensor) -> None:
        self.goal.copy_(goal_obs.to(self.goal.device).float().reshape(self.goal.shape))
        self.refresh()

    def refresh(self) -> None:
        self._latent = encode(self.model[0], self.goal[None].to(self.goal.dtype)).stoch[0]

    def forward(self, step: Imagined) -> Tensor:
        if self._latent is None:
            self.refresh()
        assert self._latent is not None
        return Normal(self._latent, self.scale).log_prob(step.state.stoch).sum(-1)


class ContrastiveGoal(PreferenceSource):
    """InfoNCE preference: how much better the goal explains the imagined state than other
    observations do (Contrastive Active Inference).

    ``f(s)`` (state features -> ``dim``) and ``e(o)`` (observation -> ``dim``) are unit
    vectors trained with the InfoNCE loss on filtered states and their own observations;
    ``negatives`` observations from the replay buffer form the contrast set at planning time.
    """

    needs = Needs(obs=False)
    uses_goal = True

    def __init__(
        self,
        model: WorldModel,
        imaginer: Imaginer,
        feature_size: int,
        dim: int = 32,
        temperature: float = 0.1,
        negatives: int = 64,
    ):
        super().__init__()
        self.model = [model]
        self.imaginer = [imaginer]
        self.temperature = float(temperature)
        self.state_head = nn.Sequential(
            nn.Linear(feature_size, 128), nn.SiLU(), nn.Linear(128, dim)
        )
        obs_in = math.prod(model.spec.shape)
        if model.pixels:
            # Pixels go through the world model's own (frozen here) encoder first.
            obs_in = model.cfg.embed
        self.obs_head = nn.Sequential(nn.Linear(obs_in, 128), nn.SiLU(), nn.Linear(128, dim))
        self.register_buffer("goal", torch.zeros(model.spec.shape))
        self.register_buffer("bank", torch.zeros(negatives, *model.spec.shape))
        self._keys: Tensor | None = None

    def embed_obs(self, obs: Tensor) -> Tensor:
        """``(B, *shape)`` -> unit vectors ``(B, dim)``."""
        model = self.model[0]
        x = model.preprocess(obs)
        if model.pixels:
            with torch.no_grad():
                x = model.encoder(x)
        return F.normalize(self.obs_head(x.flatten(1)), dim=-1)

    def embed_state(self, state: LatentState) -> Tensor:
        return F.normalize(self.state_head(self.imaginer[0].features(state)), dim=-1)

    def set_goal(self, goal_obs: Tensor) -> None:
        self.goal.copy_(goal_obs.to(self.goal.device).float().reshape(self.goal.shape))
        self._keys = None

    def set_negatives(self, obs: Tensor) -> None:
        """Observations ``(K, *shape)`` to contrast the goal with (``K`` = ``negatives``)."""
        self.bank.copy_(obs.to(self.bank.device).float().reshape(self.bank.shape))
        self._keys = None

    def refresh(self) -> None:
        with torch.no_grad():
            self._keys = self.embed_obs(torch.cat([self.goal[None], self.bank]))

    def forward(self, step: Imagined) -> Tensor:
        if self._keys is None:
            self.refresh()
        assert self._keys is not None
        logits = self.embed_state(step.state) @ self._keys.T / self.temperature
        return logits[:, 0] - torch.logsumexp(logits, -1)

    def loss(self, states: LatentState, obs: Tensor) -> tuple[Tensor, dict[str, float]]:
        """InfoNCE: state ``i`` should pick its own observation among the batch's."""
        logits = self.embed_state(states.detach()) @ self.embed_obs(obs).T / self.temperature
        loss = F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))
        self._keys = None
        return loss, {"losses/contrastive": float(loss.detach())}


class DensityPreference(PreferenceSource):
    """An exact density over state observations fitted to demonstrations:
    ``log p̃(o) = log p_flow(o)`` (:class:`~world_models.priors.LatentPrior`, kind ``flow``)."""

    def __init__(self, dim: int, cfg: LatentPriorConfig | None = None):
        super().__init__()
        self.prior = LatentPrior(cfg or LatentPriorConfig(kind="flow"), dim)

    def fit(self, states: Tensor) -> dict[str, float]:
        """Fit to demonstration states ``(N, D)``."""
        return self.prior.fit(states)

    def forward(self, step: Imagined) -> Tensor:
        assert step.obs is not None
        return self.prior.log_prob(step.obs.flatten(1))


class GoalSampler(nn.Module):
    """The goal of each episode: :meth:`sample` ``(episode, first_obs) -> (*obs_shape)``.

    ``task``: the task's goal written into the first observation (state vectors); ``file``:
    one of the given goal observations, the first every episode (``per_episode=False``, as
    published agents do) or one drawn per episode; ``diffusion``: a draw from a diffusion
    prior fitted to demonstration states. Draws use a generator seeded by ``seed`` and the
    episode index, so a resumed run sees the same goals.
    """

    def __init__(
        self,
        kind: str,
        seed: int,
        task: Any = None,
        goals: Tensor | None = None,
        per_episode: bool = False,
        prior: LatentPrior | None = None,
    ):
        super().__init__()
        if kind not in GOAL_SOURCES:
            raise ValueError(
                f"invalid goal_source={kind!r}: must be one of {', '.join(GOAL_SOURCES)}"
            )
        self.kind, self.seed, self.task, self.per_episode = kind, seed, task, per_episode
        self.register_buffer("goals", torch.zeros(0) if goals is None else goals.float())
        self.prior = prior

    def _generator(self, episode: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + episode)

    def sample(self, episode: int, first_obs: Tensor) -> Tensor:
        if self.kind == "task":
            return torch.as_tensor(self.task.goal_observation(first_obs.cpu().numpy())).float()
        if self.kind == "file":
            k = self.goals.shape[0]
            index = (
                int(torch.randint(k, (), generator=self._generator(episode)))
                if self.per_episode
                else 0
            )
            return self.goals[index]
        assert self.prior is not None
        with torch.random.fork_rng():
            torch.manual_seed(self.seed * 1_000_003 + episode)
            return self.prior.sample(1)[0].reshape(first_obs.shape)


def diffusion_goal_prior(states: Tensor, steps: int = 1000) -> LatentPrior:
    """A diffusion prior over demonstration states ``(N, D)`` to draw goals from."""
    prior = LatentPrior(LatentPriorConfig(kind="diffusion", steps=steps), states.shape[-1])
    prior.fit(states)
    return prior
