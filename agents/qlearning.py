"""Tabular Q-learning: the reward-driven baseline of the discrete tasks.

Watkins' one-step Q-learning with epsilon-greedy exploration (epsilon decays linearly from
``epsilon_start`` to ``epsilon_end`` over ``epsilon_decay_steps`` env steps). The table is
indexed by the last ``history`` observations of the episode (each an outcome index per
modality): 1 is plain Q-learning on observations; partially observed tasks need more (the
T-maze's cue is seen three moves before the arm is chosen, so its tuned value is 4).

``objective=reward`` learns from the env's reward; ``objective=preference`` from the task's
log-preferences of each outcome instead (``sum_m C[m][o_m]``, the ``C`` a pymdp agent
plans with), so both agents can be compared on either objective.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.base import EpisodeTracker, LogFn, episode_seed
from generative.base import check as _check
from generative.base import check_choice as _check_choice

OBJECTIVES = ("reward", "preference")


@dataclasses.dataclass(frozen=True)
class Config:
    """Tabular Q-learning settings."""

    learning_rate: float = 0.1
    """Step size of the Q update."""
    gamma: float = 0.99
    """Discount per decision."""
    epsilon_start: float = 1.0
    """Probability of a random action at the start."""
    epsilon_end: float = 0.05
    """... and after epsilon_decay_steps env steps."""
    epsilon_decay_steps: int = 5000
    """Env steps of the linear decay."""
    history: int = 1
    """Observations (the latest first) that index the table."""
    initial_q: float = 0.0
    """Value of unseen entries; above the best return it drives systematic exploration
    (optimism in the face of uncertainty)."""
    task: str = ""
    """The task (filled in by train-agent)."""
    objective: str = "reward"
    """reward (the env's) | preference (the task's log-preferences of outcomes)."""

    def __post_init__(self) -> None:
        _check(0 < self.learning_rate <= 1, "learning_rate", self.learning_rate, "in (0, 1]")
        _check(0 <= self.gamma <= 1, "gamma", self.gamma, "in [0, 1]")
        for name in ("epsilon_start", "epsilon_end"):
            _check(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        _check(
            self.epsilon_decay_steps >= 1, "epsilon_decay_steps", self.epsilon_decay_steps, ">= 1"
        )
        _check(self.history >= 1, "history", self.history, ">= 1")
        _check_choice("objective", self.objective, OBJECTIVES)


# Optimistic values (initial_q 1 = the best reward) and gamma 0.9 make the sparse goals of
# the grid tasks reachable within these budgets (measured: gridworld solved in 3,000 steps).
TUNED: dict[str, dict[str, Any]] = {
    "tmaze": {"history": 4, "gamma": 0.9, "initial_q": 1.0, "learning_rate": 0.2,
              "epsilon_decay_steps": 1000},
    "gridworld": {"gamma": 0.9, "initial_q": 1.0, "learning_rate": 0.5,
                  "epsilon_decay_steps": 2000},
    "cue-chaining": {"history": 20, "gamma": 0.9, "initial_q": 1.0, "learning_rate": 0.5,
                     "epsilon_decay_steps": 4000},
    "frozenlake": {"gamma": 0.95, "initial_q": 1.0, "epsilon_decay_steps": 10000},
}  # fmt: skip


class QLearningAgent:
    """Q-learning over a table of observation histories (see the module docstring)."""

    Config: ClassVar[type] = Config
    SMOKE: ClassVar[Mapping[str, Any]] = {"epsilon_decay_steps": 100}
    OBJECTIVES: ClassVar[tuple[str, ...]] = OBJECTIVES
    PLANNERS: ClassVar[tuple[str, ...]] = ()
    OBS: ClassVar[tuple[str, ...]] = ("state",)

    def __init__(
        self, cfg: Config, env: gym.Env, device: torch.device | None = None, seed: int = 0
    ):
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"tabular Q-learning needs discrete actions, not {env.action_space}")
        if not isinstance(env.observation_space, gym.spaces.MultiDiscrete):
            raise ValueError(
                f"tabular Q-learning needs discrete observations, not {env.observation_space}"
            )
        self.cfg, self.seed = cfg, seed
        self.num_actions = int(env.action_space.n)
        self.preference: list[np.ndarray] | None = None
        if cfg.objective == "preference":
            from envs.discrete import model_of

            self.preference = [np.asarray(c, dtype=np.float64) for c in model_of(env).C]
        self.q: dict[tuple[int, ...], np.ndarray] = {}
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0
        self.episode = 0

    @classmethod
    def tuned(cls, task: str) -> dict[str, Any]:
        """Per-task overrides of ``Config`` (:data:`TUNED`)."""
        return dict(TUNED.get(task, {}))

    @property
    def epsilon(self) -> float:
        cfg = self.cfg
        fraction = min(1.0, self.env_steps / cfg.epsilon_decay_steps)
        return cfg.epsilon_start + fraction * (cfg.epsilon_end - cfg.epsilon_start)

    def _key(self, obs: Any, state: tuple[int, ...] | None) -> tuple[int, ...]:
        """The table index: this observation, then up to ``history - 1`` earlier ones."""
        width = int(np.asarray(obs).size)
        recent = tuple(int(o) for o in np.asarray(obs).reshape(-1))
        earlier = () if state is None else state[: width * (self.cfg.history - 1)]
        return recent + earlier

    def _values(self, key: tuple[int, ...]) -> np.ndarray:
        return self.q.get(key, np.full(self.num_actions, self.cfg.initial_q))

    def act(self, obs: Any, state: Any = None, explore: bool = False) -> tuple[np.ndarray, Any]:
        """Greedy action for the observation history (epsilon-greedy with ``explore``);
        the state is the history key. Ties go to the lowest action (random while exploring)."""
        key = self._key(obs, state)
        values = self._values(key)
        if explore and self.rng.random() < self.epsilon:
            action = int(self.rng.integers(self.num_actions))
        elif explore:
            action = int(self.rng.choice(np.flatnonzero(values == values.max())))
        else:
            action = int(np.argmax(values))
        return np.int64(action), key

    def _reward(self, reward: float, obs: Any) -> float:
        if self.preference is None:
            return reward
        outcome = np.asarray(obs).reshape(-1)
        return float(sum(c[int(o)] for c, o in zip(self.preference, outcome, strict=True)))

    def train_until(self, env: gym.Env, env_steps: int, log: LogFn) -> None:
        """Epsilon-greedy episodes with a Q update after every step; logs each episode."""
        cfg = self.cfg
        while self.env_steps < env_steps:
            obs, _ = env.reset(seed=episode_seed(self.seed, self.episode))
            tracker, key = EpisodeTracker(), None
            td_errors = []
            while True:
                action, key = self.act(obs, key, explore=True)
                obs, reward, terminated, truncated, info = env.step(action)
                self.env_steps += 1
                tracker.step(float(reward), info)
                target = self._reward(float(reward), obs)
                if not terminated:
                    target += cfg.gamma * float(self._values(self._key(obs, key)).max())
                values = self.q.setdefault(key, self._values(key))
                td = target - values[int(action)]
                values[int(action)] += cfg.learning_rate * td
                td_errors.append(abs(td))
                if terminated or truncated:
                    break
            self.episode += 1
            log(
                {
                    **tracker.finish(),
                    "losses/td_error": float(np.mean(td_errors)),
                    "charts/epsilon": self.epsilon,
                    "charts/table_size": float(len(self.q)),
                },
                self.env_steps,
            )

    def state_dict(self) -> dict[str, Any]:
        """The table (keys padded with -1, values), counters and the generator state."""
        keys = list(self.q)
        width = max((len(k) for k in keys), default=0)
        padded = np.full((len(keys), width), -1, dtype=np.int64)
        for i, k in enumerate(keys):
            padded[i, : len(k)] = k
        values = np.stack([self.q[k] for k in keys]) if keys else np.zeros((0, self.num_actions))
        return {
            "keys": torch.as_tensor(padded),
            "key_lengths": torch.as_tensor([len(k) for k in keys], dtype=torch.int64),
            "values": torch.as_tensor(values),
            "env_steps": self.env_steps,
            "episode": self.episode,
            "rng": json.dumps(self.rng.bit_generator.state),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        keys = np.asarray(state["keys"])
        lengths = np.asarray(state["key_lengths"])
        values = np.asarray(state["values"], dtype=np.float64)
        self.q = {
            tuple(int(v) for v in keys[i, : lengths[i]]): values[i].copy() for i in range(len(keys))
        }
        self.env_steps = int(state["env_steps"])
        self.episode = int(state["episode"])
        self.rng.bit_generator.state = json.loads(state["rng"])
