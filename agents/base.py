"""The Agent interface every decision maker implements, and small helpers they share.

An agent is built by its registered class (``agents.AGENTS`` resolves a name to it)::

    agent = AgentClass(cfg, env, device, seed)   # cfg: an AgentClass.Config

and then trained in chunks by ``activegen train-agent``::

    agent.train_until(env, 10_000, log)   # collect and learn until agent.env_steps >= 10_000
    action, state = agent.act(obs, state, explore=False)
    checkpoint = agent.state_dict()       # weights_only-safe: tensors, numbers, str, list, dict

Contract of a chunk (what makes evaluation between chunks and ``--resume`` exact):

- ``env_steps`` counts calls to ``env.step`` of the env given to the agent (agent
  decisions; a task's action repeat happens inside one call).
- ``train_until`` finishes the episode it is in before returning, so a chunk always ends
  at an episode end, and the agent never carries an episode across a chunk boundary.
- Episode ``k`` (counting from 0 over the whole run) of the training env starts with
  ``env.reset(seed=episode_seed(seed, k))``, so a resumed run rebuilds the env exactly:
  the episode index is part of ``state_dict``.
- ``state_dict`` holds everything needed to continue identically: networks, optimisers,
  replay buffer (as tensors), observation-normalisation statistics, ``env_steps``, the
  episode index and any private random generator of the agent. The global python, numpy
  and torch generators are saved by the run itself (``runs.checkpoint.rng_state``).
- ``log(metrics, env_step)`` receives per-episode and training metrics under stable names
  (:data:`METRIC_NAMES`).

Envs built with :func:`make_agent_env` report ``info["success"]`` (the task's goal test on
the current state, in pixel mode too) and ``info["episode_success"]`` (by the task's rule)
on every step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, SupportsFloat, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

LogFn = Callable[[Mapping[str, float], int], None]
"""``log(metrics, env_step)``: how an agent reports scalars (the run writes them)."""

OBJECTIVES = ("reward", "preference", "efe", "feef")
"""What an agent optimises: task reward, log-preference of outcomes, expected free energy
(preference + epistemic value), or free energy of the expected future."""

PLANNERS = ("cem", "mppi", "policy")
"""How a model-based agent picks actions: CEM or MPPI over action sequences, or an
amortised policy trained in imagination."""

OBS = ("state", "pixels")

RUN_FIELDS = ("task", "obs", "objective", "planner")
"""Fields ``train-agent`` fills in an agent's ``Config`` from its own options when the
``Config`` declares them (the command line is their single source; ``--set`` may not)."""

METRIC_NAMES = {
    "charts/episodic_return": "return of a finished training episode",
    "charts/episodic_length": "its length in agent steps",
    "charts/success": "1 if the episode succeeded by its task's rule (the goal test held at "
    "some step, or at the last for a goal to hold), else 0",
    "charts/sps": "training env steps per second over the last episode",
    "losses/...": "training losses (e.g. losses/critic, losses/actor, losses/world_model)",
    "efe/...": "expected-free-energy terms of the chosen plans (e.g. efe/risk, efe/ambiguity)",
    "timing/plan_ms": "milliseconds per action spent choosing it",
}
"""Stable metric names agents log through :data:`LogFn` (CleanRL's grouping)."""


@runtime_checkable
class Agent(Protocol):
    """What ``train-agent``, evaluation and ``record --run`` need of an agent."""

    env_steps: int
    """Training env steps consumed so far."""

    def act(self, obs: Any, state: Any = None, explore: bool = False) -> tuple[np.ndarray, Any]:
        """The action for ``obs`` (as the env returns it) and the agent's next state.

        ``state`` is the agent's recurrent or planning state, ``None`` at an episode start;
        ``explore=False`` is the deterministic evaluation policy. The action is an
        ``(action_dim,)`` array in the env's action space (an integer for discrete ones).
        """
        ...

    def train_until(self, env: gym.Env, env_steps: int, log: LogFn) -> None:
        """Collect experience in ``env`` and learn until ``self.env_steps >= env_steps``,
        finishing the current episode first; report metrics through ``log``."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue identically, as tensors, numbers, strings, lists, dicts."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on an agent built with the same config)."""
        ...


class AgentClass(Protocol):
    """What ``agents.AGENTS`` entries resolve to: the agent's class.

    ``Config`` is a frozen dataclass whose defaults are the benchmark settings; ``SMOKE``
    holds its overrides for the ``smoke`` preset (a few seconds of CPU); ``OBJECTIVES``,
    ``PLANNERS`` and ``OBS`` list what the agent supports (``PLANNERS`` is empty for agents
    that do not plan). An optional classmethod ``tuned(task) -> dict`` gives per-task
    overrides of ``Config`` applied before ``SMOKE`` and ``--set``.
    """

    Config: ClassVar[type]
    SMOKE: ClassVar[Mapping[str, Any]]
    OBJECTIVES: ClassVar[tuple[str, ...]]
    PLANNERS: ClassVar[tuple[str, ...]]
    OBS: ClassVar[tuple[str, ...]]

    def __call__(self, cfg: Any, env: gym.Env, device: torch.device, seed: int) -> Agent: ...


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of training episode ``episode`` (from 0) of a run seeded ``seed``."""
    return seed + episode


class EpisodeSeeds(gym.Wrapper):
    """Reset episode ``k`` with ``episode_seed(seed, k)`` whatever seed the caller passes.

    For agents whose library resets the env itself (SB3's vectorised envs). ``episode`` is
    the index of the next episode; save and restore it with the agent.
    """

    def __init__(self, env: gym.Env, seed: int, episode: int = 0):
        super().__init__(env)
        self.seed = seed
        self.episode = episode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=episode_seed(self.seed, self.episode), options=options)
        self.episode += 1
        return obs, info


class SuccessInfo(gym.Wrapper):
    """Add the task's goal test on the current state to every step: ``info["success"]``,
    and the episode's success so far by the task's rule (:meth:`TaskSpec.episode_success
    <envs.tasks.TaskSpec.episode_success>`), ``info["episode_success"]``.

    Wrapping an env built in ``both`` mode with ``keep="pixels"`` tests the state and passes
    on only the pixels.
    """

    def __init__(self, env: gym.Env, task: Any, keep: str | None = None):
        super().__init__(env)
        self._task = task
        self._keep = keep
        self._episode_success = False
        if keep is not None:
            self.observation_space = env.observation_space[keep]

    def _split(self, obs: Any) -> tuple[Any, bool]:
        """The observation passed on, and whether the goal test holds on its state."""
        if self._keep is None:
            return obs, bool(self._task.success(obs))
        return obs[self._keep], bool(self._task.success(obs["state"]))

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        obs, held = self._split(obs)
        self._episode_success = False
        return obs, {**info, "success": held}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, held = self._split(obs)
        self._episode_success = self._task.episode_success(self._episode_success, held)
        info["success"], info["episode_success"] = held, self._episode_success
        return obs, reward, terminated, truncated, info


def episode_success(so_far: bool, info: Mapping[str, Any]) -> bool:
    """An episode's success after a step: ``info["episode_success"]`` where
    :class:`SuccessInfo` tracks it by the task's rule, else whether ``info["success"]``
    held at some step."""
    if "episode_success" in info:
        return bool(info["episode_success"])
    return so_far or bool(info.get("success", False))


def make_agent_env(
    task: str, obs: str = "state", seed: int | None = None, action_repeat: int | None = None
) -> gym.Env:
    """Task ``task`` as agents see it: ``state`` vectors or ``pixels`` ``(3, 64, 64)`` uint8,
    with ``info["success"]``. ``seed`` seeds the action space and a first reset."""
    from envs.tasks import get_task, make_env

    spec = get_task(task)
    if obs == "pixels":
        env = SuccessInfo(make_env(task, "both", action_repeat=action_repeat), spec, "pixels")
    else:
        env = SuccessInfo(make_env(task, obs, action_repeat=action_repeat), spec)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


@dataclasses.dataclass
class EpisodeTracker:
    """Accumulates one training episode's return, length and success for logging."""

    ret: float = 0.0
    length: int = 0
    success: bool = False
    _start: float = dataclasses.field(default_factory=time.perf_counter)

    def step(self, reward: float, info: Mapping[str, Any]) -> None:
        self.ret += float(reward)
        self.length += 1
        self.success = episode_success(self.success, info)

    def finish(self) -> dict[str, float]:
        """The episode's ``charts/...`` metrics; starts the next episode."""
        seconds = max(time.perf_counter() - self._start, 1e-9)
        metrics = {
            "charts/episodic_return": self.ret,
            "charts/episodic_length": float(self.length),
            "charts/success": float(self.success),
            "charts/sps": self.length / seconds,
        }
        self.ret, self.length, self.success = 0.0, 0, False
        self._start = time.perf_counter()
        return metrics


TIMING_PREFIXES = ("charts/sps", "timing/")
"""Metric names measured in wall time: they differ between identical runs."""


def is_timing(name: str) -> bool:
    """Whether metric ``name`` is a wall-time measurement (not reproducible)."""
    return name.startswith(TIMING_PREFIXES) or name.endswith("_ms")
