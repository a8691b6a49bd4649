"""The active-inference agent: a world model, a preference, an objective and a way to act.

Training (:meth:`ActiveInferenceAgent.train_until`) alternates collecting and learning:
uniformly random actions for the first ``prefill`` steps (whole episodes), then actions
from the planner (CEM or MPPI over the world model, given the amortised policy's proposals
with ``policy_proposals``) or the amortised policy itself, with Gaussian exploration noise;
every ``train_every`` steps, ``train_steps`` updates of the world model on replayed
experience (and of the contrastive preference and the policy, when used).
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
from torch import Tensor

import world_models
from agents.active_inference.config import OBS, PLANNERS, TUNED, Config
from agents.active_inference.imagination import Imagined, Needs, imagine, make_imaginer
from agents.active_inference.objective import OBJECTIVES, Objective
from agents.active_inference.planner import SamplingPlanner
from agents.active_inference.policy import ActorCritic, PolicyConfig
from agents.active_inference.preferences import (
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
from generative.base import DataSpec, check_finite
from generative.base import check as _check
from world_models.base import WorldModel, imagination_precision
from world_models.priors import LatentPriorConfig
from world_models.replay import ReplayBuffer
from world_models.state import LatentState


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
        if cfg.trains_policy:
            feature_size = self.imaginer.features(self.model.initial(1)).shape[-1]
            self.policy = ActorCritic(
                cfg.policy, feature_size, self.action_dim, self.low, self.high
            )
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
        cfg, source = self.cfg, self.cfg.preference_source
        if source == "task":
            return TaskPreference(self.task.preference)
        if source == "reward":
            return RewardPreference(cfg.preference_temperature)
        if source == "pixel-goal":
            return PixelGoal(self.spec.shape, cfg.goal_scale / 10, cfg.pixel_likelihood)
        if source == "latent-goal":
            return LatentGoal(self.model, cfg.goal_scale)
        if source == "contrastive":
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
        if self.cfg.planner == "policy":
            assert self.policy is not None
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

            proposals = None
            if self.cfg.policy_proposals:
                assert self.policy is not None
                with imagination_precision(self.device, self.cfg.precision):
                    proposals = self.policy.propose(
                        self.imaginer, latent, self.cfg.policy_proposals, self.cfg.horizon
                    )
            result = self.planner.plan(cost, warm, proposals=proposals)
            plan, action = result.mean, result.mean[0]
            self.plan = plan
        if action.is_cuda:  # CUDA runs asynchronously: time the finished action
            torch.cuda.synchronize(action.device)
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
        if plan is None:
            assert self.policy is not None
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
        # The RSSM restarts its state at episode starts, so its chunks run across episodes
        # (as Dreamer's): within episodes, a task that ends by failing would leave every
        # episode shorter than the chunks unseen, early on nearly all of them.
        across = cfg.world_model_name == "rssm"
        seq_len = max(2, min(self.seq_len, self.replay.max_chunk(across)))
        for _ in range(steps):
            batch = self.replay.sample(self.batch_size, seq_len, across).to(self.device)
            metrics = self.model.train_step(batch, self.optimizers, cfg.grad_clip)
            metrics = {k if "/" in k else f"world_model/{k}": v for k, v in metrics.items()}
            if isinstance(self.preference, ContrastiveGoal) or self.policy is not None:
                metrics.update(self._train_extras(batch))
            # Here, not only in the episode's log: a NaN weight would fail in acting first.
            check_finite(metrics, self.env_steps)
            self._record(metrics)
            self.updates += 1
        if isinstance(self.preference, ContrastiveGoal):
            negatives = self.replay.sample(cfg.contrastive_negatives, 1).obs[:, 0]
            self.preference.set_negatives(negatives)
        self.preference.refresh()

    def _train_extras(self, batch: Any) -> dict[str, float]:
        with torch.no_grad():
            states = self.model.observe(batch.obs, batch.action, is_first=batch.is_first)
            states = states.flatten()
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
