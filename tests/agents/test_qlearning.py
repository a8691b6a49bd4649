"""Tabular Q-learning: learns the discrete tasks, resumes exactly through train-agent."""

import json

import numpy as np
import pytest

from agents.base import is_timing, make_agent_env
from agents.qlearning import Config, QLearningAgent
from runs import cli
from runs.checkpoint import load_checkpoint, save_checkpoint


def _agent(task, **changes):
    cfg = Config(**{**QLearningAgent.tuned(task), "task": task, **changes})
    return QLearningAgent(cfg, make_agent_env(task), None, seed=0)


def _greedy_success(agent, task, episodes=10):
    env = make_agent_env(task)
    wins = 0
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        state = None
        while True:
            action, state = agent.act(obs, state)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        wins += info["success"]
    return wins / episodes


def test_learns_the_gridworld():
    agent = _agent("gridworld")
    assert _greedy_success(agent, "gridworld") == 0.0  # an empty table walks into a wall
    agent.train_until(make_agent_env("gridworld", seed=0), 3000, lambda m, s: None)
    assert _greedy_success(agent, "gridworld") == 1.0


def test_history_keys_remember_the_tmaze_cue():
    # The arm is chosen three moves after the cue is seen: a key of the last 4 observations
    # (3 outcomes each) still holds it at the middle of the maze.
    agent = _agent("tmaze")
    key = None
    for obs in ([0, 0, 0], [3, 0, 1], [0, 0, 0], [4, 0, 0]):  # centre, cue (left), centre, middle
        _, key = agent.act(np.array(obs), key)
    assert key == (4, 0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0)
    _, key = agent.act(np.array([1, 1, 0]), key)  # the oldest observation drops out
    assert key[:3] == (1, 1, 0) and len(key) == 12


def test_preference_objective_learns_from_log_preferences():
    agent = _agent("gridworld", objective="preference")
    assert agent._reward(1.0, np.array([24])) == 3.0  # C of the goal cell, not the reward
    assert agent._reward(0.0, np.array([3])) == 0.0


def test_state_dict_round_trip(tmp_path):
    agent = _agent("tmaze")
    agent.train_until(make_agent_env("tmaze", seed=0), 200, lambda m, s: None)
    state = load_checkpoint(save_checkpoint({"a": agent.state_dict()}, tmp_path / "a.pt"))["a"]
    other = _agent("tmaze")
    other.load_state_dict(state)
    assert other.q.keys() == agent.q.keys()
    for key, values in agent.q.items():
        np.testing.assert_array_equal(other.q[key], values)
    assert other.rng.random() == agent.rng.random()


class SimulatedKill(Exception):
    pass


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if not is_timing(k)} for x in lines]


def test_killed_run_resumes_to_identical_metrics(out_dir, tmp_path, monkeypatch):
    args = ["train-agent", "--agent", "qlearning", "--env", "gridworld", "--preset", "smoke",
            "--quiet"]  # fmt: skip
    assert cli.main([*args, "--out", str(tmp_path / "whole")]) == 0
    (whole,) = (tmp_path / "whole").glob("agent/*/*")
    assert whole.parent.name == "qlearning-reward-gridworld"

    act = QLearningAgent.act

    def dies_at_250(self, *a, **k):
        if self.env_steps == 250:
            raise SimulatedKill
        return act(self, *a, **k)

    monkeypatch.setattr(QLearningAgent, "act", dies_at_250)
    with pytest.raises(SimulatedKill):
        cli.main([*args, "--out", str(out_dir)])
    monkeypatch.setattr(QLearningAgent, "act", act)
    (run_dir,) = out_dir.glob("agent/*/*")
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] >= 200
    assert cli.main(["train-agent", "--resume", str(run_dir), "--quiet"]) == 0
    records = _metrics(run_dir)
    assert records == _metrics(whole)
    assert any("eval/success" in r for r in records)
