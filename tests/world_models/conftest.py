"""A tiny deterministic task for the world-model tests: a 2-D point mass, no MuJoCo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from world_models.replay import ReplayBuffer


class PointMass:
    """State ``(x, y, vx, vy)``; an action ``(ax, ay)`` in [-1, 1] accelerates the mass.

    ``v' = 0.8 v + 0.2 a`` and ``p' = clip(p + 0.2 v', -2, 2)``; the reward is ``-|p'|^2``.
    Episodes start at a random position at rest and never terminate.
    """

    obs_dim, action_dim = 4, 2

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.state = np.zeros(4, np.float32)

    def reset(self) -> np.ndarray:
        self.state = np.concatenate([self.rng.uniform(-1, 1, 2), np.zeros(2)]).astype(np.float32)
        return self.state.copy()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        velocity = 0.8 * self.state[2:] + 0.2 * np.clip(action, -1, 1)
        position = np.clip(self.state[:2] + 0.2 * velocity, -2, 2)
        self.state = np.concatenate([position, velocity]).astype(np.float32)
        return self.state.copy(), float(-(position**2).sum())


def point_mass_replay(episodes: int, length: int = 20, seed: int = 0) -> ReplayBuffer:
    """``episodes`` random-policy episodes of ``length`` steps in a buffer that holds them all."""
    env = PointMass(seed)
    rng = np.random.default_rng(seed + 1)
    buffer = ReplayBuffer(episodes * (length + 1), (4,), 2)
    for _ in range(episodes):
        obs = [env.reset()]
        actions = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
        rewards = []
        for a in actions:
            o, r = env.step(a)
            obs.append(o)
            rewards.append(r)
        buffer.add_episode(np.stack(obs), actions, np.array(rewards, np.float32))
    return buffer


@pytest.fixture(scope="session")
def point_mass_data() -> tuple[ReplayBuffer, ReplayBuffer]:
    """(training, held-out) random-policy experience of the point mass."""
    torch.manual_seed(0)
    return point_mass_replay(60, seed=0), point_mass_replay(10, seed=100)
