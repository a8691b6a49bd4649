"""A stub agent for testing the train-agent loop (the DreamerV3-style loop test).

It acts with noise drawn from the global torch generator and "learns" a running mean of
rewards, so an interrupted and resumed run must reproduce an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.base import EpisodeTracker, LogFn, episode_seed


class SimulatedKill(Exception):
    """Raised at ``crash_at`` env steps to stand in for a killed process."""


class StubAgent:
    @dataclasses.dataclass(frozen=True)
    class Config:
        scale: float = 0.5
        task: str = ""
        objective: str = "reward"

    SMOKE: Mapping[str, Any] = {"scale": 0.25}
    OBJECTIVES = ("reward", "preference")
    PLANNERS = ()
    OBS = ("state",)
    calls: ClassVar[dict[str, int]] = {}  # class-level counters the tests read
    crash_at = 0  # raise when env_steps reaches this (0: never); set by the tests

    def __init__(self, cfg: Config, env: gym.Env, device: torch.device, seed: int):
        self.cfg, self.seed = cfg, seed
        self.dim = int(np.prod(env.action_space.shape))
        self.bias = torch.zeros(self.dim)
        self.env_steps = 0
        self.episode = 0
        self.reward_mean = 0.0
        StubAgent.calls["init"] = StubAgent.calls.get("init", 0) + 1

    def act(self, obs: Any, state: Any = None, explore: bool = False) -> tuple[np.ndarray, Any]:
        key = "act_explore" if explore else "act_eval"
        StubAgent.calls[key] = StubAgent.calls.get(key, 0) + 1
        noise = torch.randn(self.dim) * self.cfg.scale if explore else torch.zeros(self.dim)
        t = 0 if state is None else state + 1
        return torch.tanh(self.bias + noise).numpy(), t

    def train_until(self, env: gym.Env, env_steps: int, log: LogFn) -> None:
        StubAgent.calls["train_until"] = StubAgent.calls.get("train_until", 0) + 1
        while self.env_steps < env_steps:
            obs, _ = env.reset(seed=episode_seed(self.seed, self.episode))
            tracker, state = EpisodeTracker(), None
            while True:
                action, state = self.act(obs, state, explore=True)
                obs, reward, terminated, truncated, info = env.step(action)
                self.env_steps += 1
                if self.env_steps == StubAgent.crash_at:
                    raise SimulatedKill(self.env_steps)
                tracker.step(float(reward), info)
                self.reward_mean += 0.01 * (float(reward) - self.reward_mean)
                if terminated or truncated:
                    break
            self.episode += 1
            self.bias += 0.1 * torch.randn(self.dim)
            log({**tracker.finish(), "losses/reward_mean": self.reward_mean}, self.env_steps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "bias": self.bias.clone(),
            "env_steps": self.env_steps,
            "episode": self.episode,
            "reward_mean": self.reward_mean,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        StubAgent.calls["load"] = StubAgent.calls.get("load", 0) + 1
        self.bias = state["bias"].clone()
        self.env_steps = int(state["env_steps"])
        self.episode = int(state["episode"])
        self.reward_mean = float(state["reward_mean"])
