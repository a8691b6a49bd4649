"""The active-inference agent: a world model, a preference, an objective and a way to act.

Training (:meth:`ActiveInferenceAgent.train_until`) alternates collecting and learning:
uniformly random actions for the first ``prefill`` steps (whole episodes), then actions
from the planner (CEM or MPPI over the world model) or the amortised policy, with Gaussian
exploration noise; every ``train_every`` steps, ``train_steps`` updates of the world model
on replayed experience (and of the contrastive preference and the policy, when used).
Everything that makes up the agent, replay buffer included, is in :meth:`state_dict`.

The objective (``reward``, ``preference``, ``efe``, ``feef``) changes only the score of
imagined futures (:mod:`agents.active_inference.objective`): the same world model,
planner, preference and training loop serve all four, so comparisons isolate it.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import yaml
from torch import Tensor

import world_models
from agents.active_inference.imagination import (
    Imagined,
    Needs,
    imagine,
    make_imaginer,
)
from agents.active_inference.objective import (
    ESTIMATORS,
    MEMBER_ESTIMATORS,
    OBJECTIVES,
    Objective,
    ObjectiveConfig,
)
from agents.active_inference.planner import PlannerConfig, SamplingPlanner
from agents.active_inference.policy import ActorCritic, PolicyConfig
from agents.active_inference.preferences import (
    GOAL_SOURCES,
    PIXEL_LIKELIHOODS,
    SOURCES,
    ContrastiveGoal,
    DensityPreference,
    GoalSampler,
    LatentGoal,
    PixelGoal,
    PreferenceSource,
    RewardPreference,
    TaskPreference,
    diffusion_goal_prior,
)
from agents.base import EpisodeTracker, LogFn, episode_seed
from generative.base import DataSpec
from generative.base import check as _check
from world_models.base import PRECISIONS, WorldModel, imagination_precision
from world_models.priors import LatentPriorConfig
from world_models.replay import ReplayBuffer
from world_models.state import LatentState

PLANNERS = ("cem", "mppi", "policy")
OBS = ("state", "pixels")
WORLD_MODELS = ("auto", "ensemble", "rssm")
MODEL_SIZES = ("default", "smoke")


@dataclasses.dataclass(frozen=True)
class Config:
    """An active-inference agent (defaults: PETS-style ensemble + CEM for state tasks)."""

    task: str = "pendulum"
    """Registered task (filled by train-agent from --env)."""
    obs: str = "state"
    """state | pixels (filled by train-agent)."""
    objective: str = "preference"
    """reward | preference | efe | feef (filled by train-agent)."""
    planner: str = "cem"
    """cem | mppi | policy (the amortised actor-critic) (filled by train-agent)."""
    world_model: str = "auto"
    """auto | ensemble | rssm; auto: ensemble for state, rssm for pixels."""
    model_size: str = "default"
    """default | smoke (the world model's SMOKE sizes)."""
    model: tuple[str, ...] = ()
    """World-model Config overrides as key=value (values read as YAML), e.g. hidden=200."""

    horizon: int = 15
    """Planning horizon H in agent steps."""
    candidates: int = 400
    """Candidate action sequences per planning iteration."""
    iterations: int = 5
    """Planner iterations per action."""
    elites: int = 40
    """CEM elites."""
    keep_elites: bool = False
    """CEM: carry each iteration's elites into the next iteration's candidates (iCEM; see
    ``PlannerConfig.keep_elites`` for why it is off)."""
    noise_beta: float = 0.0
    """Temporal colour of the planner's sampling noise, power ~ 1 / f^beta along the horizon
    (0: white, as PETS; 2: smooth sequences, as iCEM; see ``PlannerConfig.noise_beta``)."""
    temperature: float = 0.5
    """MPPI temperature, in units of the costs' spread."""
    momentum: float = 0.1
    """Share of the previous search distribution kept at each planner iteration."""
    init_std: float = 0.5
    """Initial std of the planner's action distribution."""
    min_std: float = 0.05
    """Floor on the planner's action std."""
    particles: int = 5
    """Imagined futures per candidate; with the ensemble and P = M, member p propagates
    particle p of every candidate, so every candidate is scored under every member (with
    P = 1 each candidate meets one member, and the planner favours whichever member is
    most optimistic: on inverted-pendulum it then never learned to balance)."""
    propagation_noise: bool = True
    """Sample the ensemble's predicted noise along imagined trajectories (PETS TS1)."""
    discount: float = 1.0
    """Discount over the planning horizon."""
    end_is_failure: bool = False
    """Preference-based objectives: score a predicted end of the episode (the world model's
    continuation head) as the worst outcome imagined, for tasks whose episodes end only by
    failing. Off by default: on inverted-pendulum it rescued a trained agent's episode
    starts, but trained with it from scratch the agent did worse (README)."""
    precision: str = "auto"
    """auto | float32 | bfloat16: the number format of the planner's imagined rollouts (the
    world model trains in float32); auto: bfloat16 where the hardware multiplies it natively
    (CPUs with AVX512-BF16 or AMX, CUDA GPUs), which halves a CPU plan's matrix products."""

    epistemic: str = "auto"
    """auto | disagreement | mixture | knn | latent: the information-gain estimator of efe
    and feef (auto: mixture for the ensemble, latent for the RSSM; latent needs the RSSM's
    stoch_prior=gaussian, knn works with every prior)."""
    epistemic_scale: float = 1.0
    """Weight of the epistemic value against the pragmatic value: G = -(pragmatic + scale *
    epistemic). 1 is the plain expected free energy."""
    knn_k: int = 3
    """k of the k-nearest-neighbour entropy estimate (needs particles > knn_k)."""

    preference: str = "task"
    """task | reward | pixel-goal | latent-goal | contrastive | flow: where log p̃ comes from."""
    preference_temperature: float = 1.0
    """Temperature T of the reward preference, log p̃ = r / T."""
    goal_scale: float = 1.0
    """latent-goal: std of the Gaussian similarity in latent units; pixel-goal: the
    per-pixel Laplace b (Gaussian σ) on intensities in [0, 1] is goal_scale / 10."""
    pixel_likelihood: str = "laplace"
    """laplace | gaussian: the per-pixel density of pixel-goal."""
    goal_source: str = "task"
    """task (the task's goal written into the first observation; state only) | file (goals)
    | diffusion (draws from a diffusion prior fitted to demos)."""
    goals: str = ""
    """Goal observations for goal_source=file: an .npz holding obs (K, *obs_shape)."""
    goal_per_episode: bool = False
    """Draw a new goal every episode (otherwise the first goal, as published agents do)."""
    demos: str = ""
    """Demonstrations for preference=flow or goal_source=diffusion: .npz rollouts (obs)."""
    prior_steps: int = 1000
    """Fitting steps of the flow / diffusion prior over demonstration states."""
    contrastive_negatives: int = 64
    """Observations the goal is contrasted with (preference=contrastive)."""
    contrastive_temperature: float = 0.1
    """InfoNCE temperature."""

    prefill: int = 200
    """Agent steps of uniformly random actions before planning (whole episodes)."""
    explore_noise: float = 0.0
    """Std of Gaussian noise added to planned actions while training (the planner's own
    sampling already explores; on inverted-pendulum 0.1 kept the pole from balancing)."""
    train_every: int = 25
    """Agent steps between training phases."""
    train_steps: int = 25
    """World-model (and policy) updates per training phase."""
    pretrain_steps: int = 500
    """Extra updates at the first training phase, on the prefill data."""
    batch_size: int = 0
    """Chunks per update (0: the world model's own)."""
    seq_len: int = 0
    """Observations per chunk (0: the world model's own; capped by the longest episode)."""
    lr: float = 0.0
    """World-model learning rate (0: the world model's own)."""
    capacity: int = 200_000
    """Replay capacity in observations."""
    grad_clip: float = 100.0
    """Gradient-norm clip of the world model."""

    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    """planner=policy: the actor-critic's sizes and learning settings, e.g.
    ``--set "policy={hidden: [64, 64], horizon: 10}"``."""

    def __post_init__(self) -> None:
        _check(self.obs in OBS, "obs", self.obs, "one of " + ", ".join(OBS))
        _check(self.planner in PLANNERS, "planner", self.planner, "one of " + ", ".join(PLANNERS))
        _check(
            self.world_model in WORLD_MODELS,
            "world_model",
            self.world_model,
            "one of " + ", ".join(WORLD_MODELS),
        )
        _check(self.model_size in MODEL_SIZES, "model_size", self.model_size, "default or smoke")
        _check(
            self.precision in PRECISIONS,
            "precision",
            self.precision,
            "one of " + ", ".join(PRECISIONS),
        )
        for item in self.model:
            _check("=" in item, "model", item, "key=value items")
        _check(
            self.epistemic in ("auto", *ESTIMATORS),
            "epistemic",
            self.epistemic,
            "one of auto, " + ", ".join(ESTIMATORS),
        )
        _check(
            self.preference in SOURCES,
            "preference",
            self.preference,
            "one of " + ", ".join(SOURCES),
        )
        _check(
            self.goal_source in GOAL_SOURCES,
            "goal_source",
            self.goal_source,
            "one of " + ", ".join(GOAL_SOURCES),
        )
        _check(
            self.pixel_likelihood in PIXEL_LIKELIHOODS,
            "pixel_likelihood",
            self.pixel_likelihood,
            "laplace or gaussian",
        )
        for name in (
            "particles",
            "train_every",
            "capacity",
            "contrastive_negatives",
            "prior_steps",
        ):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        for name in ("prefill", "train_steps", "pretrain_steps", "batch_size", "seq_len"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _check(self.seq_len != 1, "seq_len", self.seq_len, "0 (the model's own) or >= 2")
        for name in ("explore_noise", "lr", "epistemic_scale"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        for name in (
            "preference_temperature",
            "goal_scale",
            "contrastive_temperature",
            "grad_clip",
        ):
            _check(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        self.planner_config()
        self.objective_config()
        kind, est = self.world_model_name, self.estimator
        _check(kind == "rssm" or self.obs == "state", "world_model", kind, "rssm for pixels")
        if kind == "rssm":
            _check(
                est not in MEMBER_ESTIMATORS,
                "epistemic",
                est,
                "latent or knn with the rssm (disagreement and mixture need the ensemble)",
            )
            # latent compares the posterior with the Gaussian of the prior's stats, which is
            # the prior itself only when stoch_prior is gaussian.
            stoch_prior = self.model_overrides().get("stoch_prior", "gaussian")
            used = self.epistemic == "latent" or self.objective_config().uses_epistemic
            _check(
                est != "latent" or not used or stoch_prior == "gaussian",
                "epistemic",
                est,
                f"knn with the rssm's stoch_prior={stoch_prior}: latent (auto's choice for the "
                "rssm) compares Gaussian stats, not this prior's KL",
            )
        else:
            _check(
                est != "latent", "epistemic", est, "disagreement, mixture or knn with the ensemble"
            )
        if est == "knn":
            _check(
                self.obs == "state", "epistemic", est, "not knn with pixels (too many dimensions)"
            )
            _check(
                self.particles > self.knn_k, "particles", self.particles, f"> knn_k={self.knn_k}"
            )
            # The policy imagines one future per start state: no sample to estimate from.
            _check(
                self.planner != "policy" or not self.objective_config().uses_epistemic,
                "epistemic",
                est,
                "not knn with planner=policy (one imagined future per state)",
            )
        if self.preference in ("task", "flow"):
            _check(
                self.obs == "state",
                "preference",
                self.preference,
                "pixel-goal, latent-goal, "
                "contrastive or reward with pixels (task and flow score state vectors)",
            )
        if self.preference == "pixel-goal":
            _check(self.obs == "pixels", "preference", self.preference, "used with pixels")
        if self.preference == "flow":
            _check(self.demos != "", "demos", self.demos, "an .npz of demonstrations for flow")
        if self.uses_goal:
            if self.goal_source == "task":
                _check(self.obs == "state", "goal_source", "task", "file or diffusion with pixels")
            if self.goal_source == "file":
                _check(self.goals != "", "goals", self.goals, "an .npz of goal observations")
            if self.goal_source == "diffusion":
                _check(self.demos != "", "demos", self.demos, "an .npz of demonstrations")
                _check(self.obs == "state", "goal_source", "diffusion", "used with state obs")

    # -- derived ----------------------------------------------------------------------------
    def model_overrides(self) -> dict[str, Any]:
        """The world-model Config overrides of ``model``, values read as YAML (lists as
        tuples)."""
        values = {}
        for item in self.model:
            key, _, text = item.partition("=")
            value = yaml.safe_load(text)
            values[key.strip()] = tuple(value) if isinstance(value, list) else value
        return values

    @property
    def world_model_name(self) -> str:
        if self.world_model != "auto":
            return self.world_model
        return "rssm" if self.obs == "pixels" else "ensemble"

    @property
    def estimator(self) -> str:
        if self.epistemic != "auto":
            return self.epistemic
        return "latent" if self.world_model_name == "rssm" else "mixture"

    @property
    def uses_goal(self) -> bool:
        return self.preference in ("pixel-goal", "latent-goal", "contrastive")

    def planner_config(self) -> PlannerConfig:
        return PlannerConfig(
            kind="cem" if self.planner == "policy" else self.planner,
            horizon=self.horizon,
            candidates=self.candidates,
            iterations=self.iterations,
            elites=self.elites,
            keep_elites=self.keep_elites,
            noise_beta=self.noise_beta,
            temperature=self.temperature,
            momentum=self.momentum,
            init_std=self.init_std,
            min_std=self.min_std,
        )

    def objective_config(self) -> ObjectiveConfig:
        _check(
            self.objective in OBJECTIVES,
            "objective",
            self.objective,
            "one of " + ", ".join(OBJECTIVES),
        )
        return ObjectiveConfig(
            objective=self.objective,
            epistemic=self.estimator,
            epistemic_scale=self.epistemic_scale,
            knn_k=self.knn_k,
            discount=self.discount,
            end_is_failure=self.end_is_failure,
        )


# Per-task settings (see the README's "Active inference" section for the reasoning).
TUNED: dict[str, dict[str, Any]] = {
    # Swing-up needs to see further than balancing: 20 decisions = 40 env steps.
    "pendulum": {"horizon": 20},
    # Exploration is the whole problem: a long horizon (30 x 4 env steps) and an epistemic
    # weight large enough to compete with the steep log-preference around the flag.
    "mountaincar": {
        "horizon": 30,
        "candidates": 500,
        "elites": 50,
        "epistemic_scale": 30.0,
        "model": ("hidden=64",),
    },
    # Balancing is unstable: an open-loop plan's error grows ~e^(5t), so costs are sharp
    # in the early actions (perturbing a good plan by the default 0.5-std noise left no
    # candidate near it) and a learned model's errors compound past ~0.6 s. A narrow first
    # search with few elites (one seed in five fell without it, none in ten with it) over 8
    # decisions = 16 env steps (0.64 s); with the default search and 15 decisions even CEM
    # on a near-exact linear model dropped the pole (benchmarks/bench_planner.py).
    "inverted-pendulum": {"horizon": 8, "init_std": 0.2, "elites": 20},
    "reacher": {"horizon": 10},
}


@dataclasses.dataclass(frozen=True)
class AgentState:
    """What :meth:`ActiveInferenceAgent.act` carries within an episode.

    latent: ``(1, .)`` the filtered state; action: ``(A,)`` the last action taken; plan:
    ``(H, A)`` the last plan (the planner's warm start), ``None`` with the policy.
    """

    latent: LatentState
    action: Tensor
    plan: Tensor | None


def _load_npz(path: str, field: str) -> Tensor:
    """The observations of an .npz (``obs``, else ``pixels``) flattened over episodes."""
    file = Path(path)
    _check(file.is_file(), field, path, "an existing .npz file")
    with np.load(file) as data:
        for key in ("obs", "pixels"):
            if key in data:
                array = np.asarray(data[key])
                break
        else:
            raise ValueError(f"invalid {field}={path!r}: the .npz has no 'obs' or 'pixels' array")
    return torch.as_tensor(array)


class ActiveInferenceAgent:
    """An agent that plans with a world model toward preferred outcomes (``agents.base.Agent``)."""

    Config: ClassVar[type] = Config
    SMOKE: ClassVar[Mapping[str, Any]] = {
        "model_size": "smoke",
        "horizon": 5,
        "candidates": 64,
        "elites": 8,
        "iterations": 2,
        "prefill": 50,
        "train_every": 25,
        "train_steps": 2,
        "pretrain_steps": 5,
        "batch_size": 16,
        "seq_len": 8,
        "capacity": 5000,
        "policy": PolicyConfig(hidden=(32,), horizon=5, starts=16),
        "prior_steps": 20,
        "contrastive_negatives": 8,
    }
    OBJECTIVES: ClassVar[tuple[str, ...]] = OBJECTIVES
    PLANNERS: ClassVar[tuple[str, ...]] = PLANNERS
    OBS: ClassVar[tuple[str, ...]] = OBS

    @classmethod
    def tuned(cls, task: str) -> dict[str, Any]:
        """Per-task overrides of :class:`Config`."""
        return dict(TUNED.get(task, {}))

    def __init__(self, cfg: Config, env: gym.Env, device: torch.device, seed: int):
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ValueError(
                f"the active-inference agent needs continuous (Box) actions, not {env.action_space}"
            )
        self.cfg, self.device, self.seed = cfg, torch.device(device), int(seed)
        self.action_dim = int(np.prod(env.action_space.shape))
        self.low = float(np.min(env.action_space.low))
        self.high = float(np.max(env.action_space.high))
        shape = tuple(int(s) for s in env.observation_space.shape)
        pixels = cfg.obs == "pixels"
        _check(
            (len(shape) == 3) == pixels,
            "obs",
            cfg.obs,
            f"matching the env's observations of shape {shape}",
        )
        self.spec = DataSpec("image" if pixels else "vector", shape, 256 if pixels else None)
        self.model = self._build_world_model().to(self.device)
        train = dict(type(self.model).TRAIN)
        self.batch_size = cfg.batch_size or int(train.get("batch_size", 16))
        self.seq_len = cfg.seq_len or int(train.get("seq_len", 2))
        self.optimizers = self.model.optimizers(cfg.lr or float(train.get("lr", 1e-3)))
        self.imaginer = make_imaginer(self.model, cfg.propagation_noise)
        self.objective = Objective(cfg.objective_config())
        self.planner = SamplingPlanner(cfg.planner_config(), self.action_dim, self.low, self.high)
        self.replay = ReplayBuffer(
            cfg.capacity, shape, self.action_dim, torch.uint8 if pixels else torch.float32
        )
        from envs.tasks import get_task

        self.task = get_task(cfg.task)
        self.preference = self._build_preference().to(self.device)
        if isinstance(self.preference, ContrastiveGoal):
            self.optimizers["contrastive"] = torch.optim.Adam(self.preference.parameters(), lr=3e-4)
        self.goal_sampler = self._build_goal_sampler() if cfg.uses_goal else None
        self.policy: ActorCritic | None = None
        if cfg.planner == "policy":
            feature_size = self.imaginer.features(self.model.initial(1)).shape[-1]
            self.policy = ActorCritic(cfg.policy, feature_size, self.action_dim)
            self.policy.to(self.device)
        self.env_steps = 0
        self.episode = 0
        self.updates = 0
        self.plan = torch.zeros(0)
        self._training = False
        self._stats: dict[str, list[float]] = {}

    # -- construction -----------------------------------------------------------------------
    def _build_world_model(self) -> WorldModel:
        cfg = self.cfg
        target = world_models.WORLD_MODELS[cfg.world_model_name][0]
        module, _, attr = target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        values: dict[str, Any] = dict(cls.STATE) if cfg.obs == "state" else {}
        if cfg.model_size == "smoke":
            values.update(cls.SMOKE)
        values.update(cfg.model_overrides())
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(values) - fields)
        _check(
            not unknown, "model", unknown, f"keys of {cls.__name__}: {', '.join(sorted(fields))}"
        )
        return cls(cls.Config(**values), self.spec, self.action_dim)

    def _build_preference(self) -> PreferenceSource:
        cfg = self.cfg
        if cfg.preference == "task":
            return TaskPreference(self.task.preference)
        if cfg.preference == "reward":
            return RewardPreference(cfg.preference_temperature)
        if cfg.preference == "pixel-goal":
            return PixelGoal(self.spec.shape, cfg.goal_scale / 10, cfg.pixel_likelihood)
        if cfg.preference == "latent-goal":
            return LatentGoal(self.model, cfg.goal_scale)
        if cfg.preference == "contrastive":
            feature_size = self.imaginer.features(self.model.initial(1)).shape[-1]
            return ContrastiveGoal(
                self.model,
                self.imaginer,
                feature_size,
                temperature=cfg.contrastive_temperature,
                negatives=cfg.contrastive_negatives,
            )
        density = DensityPreference(
            math.prod(self.spec.shape), LatentPriorConfig(kind="flow", steps=cfg.prior_steps)
        )
        density.fit(_load_npz(cfg.demos, "demos").float().reshape(-1, math.prod(self.spec.shape)))
        return density

    def _build_goal_sampler(self) -> GoalSampler:
        cfg = self.cfg
        if cfg.goal_source == "task":
            return GoalSampler("task", self.seed, task=self.task)
        if cfg.goal_source == "file":
            goals = _load_npz(cfg.goals, "goals").reshape(-1, *self.spec.shape)
            return GoalSampler("file", self.seed, goals=goals, per_episode=cfg.goal_per_episode)
        demos = _load_npz(cfg.demos, "demos").float().reshape(-1, *self.spec.shape)
        prior = diffusion_goal_prior(demos.flatten(1), cfg.prior_steps)
        return GoalSampler("diffusion", self.seed, prior=prior)

    # -- acting -----------------------------------------------------------------------------
    def _log_preference(self, step: Imagined) -> Tensor:
        return self.preference(step)

    @staticmethod
    def _no_preference(step: Imagined) -> Tensor:
        assert step.reward is not None  # the reward objective's only score
        return torch.zeros_like(step.reward)

    def _planning_needs(self) -> Needs:
        needs = self.objective.needs()
        if self.cfg.objective != "reward":
            needs = needs.union(self.preference.needs)
        return needs

    def _filter(self, state: AgentState | None, obs: Tensor) -> LatentState:
        """The state ``(1, .)`` after seeing ``obs`` ``(*obs_shape)``."""
        action = torch.zeros(1, self.action_dim, device=self.device)
        if state is not None:
            action = state.action[None].to(self.device)
        if self.cfg.world_model_name == "ensemble":
            o = obs.float()[None]
            previous = o if state is None else state.latent.stoch
            return LatentState(torch.cat([previous, action], -1), o)
        latent = None if state is None else state.latent
        return self.model.observe(obs[None, None], action[:, None], latent, sample=False)[:, 0]

    def _set_goal(self, obs: Tensor, episode: int) -> None:
        if self.goal_sampler is not None:
            self.preference.set_goal(self.goal_sampler.sample(episode, obs).to(self.device))

    @torch.no_grad()
    def act(
        self, obs: Any, state: AgentState | None = None, explore: bool = False
    ) -> tuple[np.ndarray, AgentState]:
        """The action for ``obs`` and the state to pass with the next observation."""
        start = time.perf_counter()
        obs_t = torch.as_tensor(np.asarray(obs), device=self.device)
        if state is None and not self._training:
            # Evaluation episodes get goals keyed by their first observation (reproducible).
            self._set_goal(obs_t, 10**9 + int(obs_t.double().abs().sum().item() * 1e3) % 10**9)
        latent = self._filter(state, obs_t)
        if self.policy is not None:
            action = self.policy.act(self.imaginer.features(latent), explore)[0]
            plan = None
        else:
            if state is None or state.plan is None:
                warm = self.planner.initial_mean(self.device)
            else:
                warm = self.planner.shift(state.plan)
            needs = self._planning_needs()
            score = self._log_preference if self.cfg.objective != "reward" else self._no_preference

            def cost(actions: Tensor) -> Tensor:
                with imagination_precision(self.device, self.cfg.precision):
                    rollout = imagine(
                        self.imaginer, latent, actions, score, self.cfg.particles, needs
                    )
                return self.objective.cost(rollout)

            result = self.planner.plan(cost, warm)
            plan, action = result.mean, result.mean[0]
            self.plan = plan
        plan_ms = 1000 * (time.perf_counter() - start)
        if self._training:
            self._record({"timing/plan_ms": plan_ms, **self._plan_terms(latent, plan)})
        if explore and self.cfg.explore_noise > 0:
            noise = self.cfg.explore_noise * torch.randn(self.action_dim, device=self.device)
            action = action + noise
        action = action.clamp(self.low, self.high)
        return action.cpu().numpy().astype(np.float32), AgentState(latent, action, plan)

    def _plan_terms(self, latent: LatentState, plan: Tensor | None) -> dict[str, float]:
        """EFE terms of the chosen plan (or of the policy's imagined future)."""
        needs = self.objective.logging_needs().union(self.preference.needs)
        particles = self.cfg.particles
        if self.policy is not None:
            rollout = self.policy.imagine(
                self.imaginer,
                latent.map(lambda t: t.expand(particles, *t.shape[1:])),
                self._log_preference,
                needs,
                explore=False,
            )[0]
            fields = (f.name for f in dataclasses.fields(rollout))
            rollout = dataclasses.replace(
                rollout,
                **{k: _as_particles(v) for k in fields if (v := getattr(rollout, k)) is not None},
            )
        else:
            assert plan is not None
            rollout = imagine(
                self.imaginer, latent, plan[None], self._log_preference, particles, needs
            )
        return {k: float(v.mean()) for k, v in self.objective.terms(rollout).items()}

    # -- training ---------------------------------------------------------------------------
    def _record(self, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self._stats.setdefault(k, []).append(float(v))

    def _random_action(self) -> np.ndarray:
        u = torch.rand(self.action_dim)
        return (self.low + (self.high - self.low) * u).numpy().astype(np.float32)

    def train_until(self, env: gym.Env, env_steps: int, log: LogFn) -> None:
        """Collect and learn until ``env_steps`` agent steps, finishing the episode."""
        self._training = True
        try:
            while self.env_steps < env_steps:
                self._episode(env, log)
        finally:
            self._training = False

    def _episode(self, env: gym.Env, log: LogFn) -> None:
        cfg = self.cfg
        obs, _ = env.reset(seed=episode_seed(self.seed, self.episode))
        self.replay.start_episode(np.asarray(obs))
        random_episode = self.env_steps < cfg.prefill
        if not random_episode:
            self._set_goal(torch.as_tensor(np.asarray(obs), device=self.device), self.episode)
        tracker, state = EpisodeTracker(), None
        while True:
            if random_episode:
                action = self._random_action()
            else:
                action, state = self.act(obs, state, explore=True)
            obs, reward, terminated, truncated, info = env.step(action)
            self.env_steps += 1
            self.replay.add(action, float(reward), np.asarray(obs), terminated, truncated)
            tracker.step(float(reward), info)
            due = self.updates == 0 or self.env_steps % cfg.train_every == 0
            if self.env_steps >= cfg.prefill and due:
                self._train_phase()
            if terminated or truncated:
                break
        self.episode += 1
        metrics = tracker.finish()
        metrics.update({k: float(np.mean(v)) for k, v in self._stats.items()})
        self._stats = {}
        log(metrics, self.env_steps)

    def _train_phase(self) -> None:
        cfg = self.cfg
        steps = cfg.train_steps
        if self.updates == 0:
            steps += cfg.pretrain_steps
            self.model.fit_normalizer(self.replay.transitions())
        elif cfg.world_model_name == "ensemble":
            # PETS refits its input statistics as data arrives; the RSSM keeps its first fit.
            self.model.fit_normalizer(self.replay.transitions())
        longest = max(self.replay.episode_lengths())
        seq_len = max(2, min(self.seq_len, longest))
        for _ in range(steps):
            batch = self.replay.sample(self.batch_size, seq_len).to(self.device)
            metrics = self.model.train_step(batch, self.optimizers, cfg.grad_clip)
            metrics = {k if "/" in k else f"world_model/{k}": v for k, v in metrics.items()}
            if isinstance(self.preference, ContrastiveGoal) or self.policy is not None:
                metrics.update(self._train_extras(batch))
            self._record(metrics)
            self.updates += 1
        if isinstance(self.preference, ContrastiveGoal):
            negatives = self.replay.sample(cfg.contrastive_negatives, 1).obs[:, 0]
            self.preference.set_negatives(negatives)
        self.preference.refresh()

    def _train_extras(self, batch: Any) -> dict[str, float]:
        with torch.no_grad():
            states = self.model.observe(batch.obs, batch.action).flatten()
        metrics: dict[str, float] = {}
        if isinstance(self.preference, ContrastiveGoal):
            obs = batch.obs.reshape(-1, *self.spec.shape)
            loss, m = self.preference.loss(states, obs)
            opt = self.optimizers["contrastive"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            metrics.update(m)
        if self.policy is not None:
            n = states.shape[0]
            index = torch.randint(n, (min(n, self.cfg.policy.starts),), device=self.device)
            needs = self._planning_needs()
            score = self._log_preference if self.cfg.objective != "reward" else self._no_preference
            metrics.update(
                self.policy.update(
                    self.imaginer,
                    states[index],
                    self.objective,
                    score,
                    needs,
                )
            )
        return metrics

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "world_model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "replay": self.replay.state_dict(),
            "preference": self.preference.state_dict(),
            "env_steps": self.env_steps,
            "episode": self.episode,
            "updates": self.updates,
            "plan": self.plan.clone(),
        }
        if self.goal_sampler is not None:
            state["goal_sampler"] = self.goal_sampler.state_dict()
        if self.policy is not None:
            state["policy"] = self.policy.full_state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["world_model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.replay.load_state_dict(state["replay"])
        self.preference.load_state_dict(state["preference"])
        if self.goal_sampler is not None:
            self.goal_sampler.load_state_dict(state["goal_sampler"])
        if self.policy is not None:
            self.policy.load_full_state_dict(state["policy"])
        self.env_steps = int(state["env_steps"])
        self.episode = int(state["episode"])
        self.updates = int(state["updates"])
        self.plan = state["plan"].clone()
        self.preference.refresh()


def _as_particles(value: Tensor) -> Tensor:
    """A policy rollout ``(P, 1, H, ...)`` (particles as start states) -> ``(1, P, H, ...)``;
    member tensors ``(M, P, 1, H, D)`` -> ``(M, 1, P, H, D)``."""
    if value.dim() == 5:
        return value.transpose(1, 2)
    return value.transpose(0, 1)


def make(cfg: Config, env: gym.Env, device: torch.device, seed: int) -> ActiveInferenceAgent:
    """The factory ``agents.AGENTS["aif"]`` resolves to (the class itself also works)."""
    return ActiveInferenceAgent(cfg, env, device, seed)
