"""SB3 baselines through train-agent: smoke runs, exact resume, checkpoints, record --run."""

import json

import numpy as np
import pytest
import torch
from run_files import SimulatedKill, only_run_dir, read_metrics
from stable_baselines3.common.torch_layers import NatureCNN

from agents import sb3
from agents.base import make_agent_env
from runs import cli
from runs.checkpoint import load_checkpoint, save_checkpoint
from runs.train_agent import evaluate_agent

# The smoke preset: 400 steps in pendulum (episodes of 100 decisions), evaluations at 200, 400.
SMOKE = ["--env", "pendulum", "--preset", "smoke", "--eval-episodes", "1", "--quiet"]


@pytest.mark.parametrize("agent", ["sac", "td3", "ppo"])
def test_smoke_run_through_the_cli(agent, out_dir):
    assert cli.main(["train-agent", "--agent", agent, *SMOKE, "--out", str(out_dir)]) == 0
    run_dir = only_run_dir(out_dir)
    assert run_dir.parent.name == f"{agent}-pendulum"
    records = read_metrics(run_dir)
    assert [r["step"] for r in records if "eval/return" in r] == [200, 400]
    assert [r["step"] for r in records if "charts/episodic_return" in r] == [100, 200, 300, 400]
    assert any(k.startswith("losses/") for r in records for k in r)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # weights_only=True
    assert state["agent"]["num_timesteps"] == 400 and state["agent"]["episode"] == 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 400 and np.isfinite(summary["metrics"]["eval/return"])


@pytest.mark.parametrize("agent", ["sac", "td3", "ppo"])
def test_killed_run_resumes_to_identical_metrics(agent, out_dir, tmp_path, monkeypatch):
    args = ["train-agent", "--agent", agent, *SMOKE]
    assert cli.main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = only_run_dir(tmp_path / "whole")

    on_step = sb3._Chunk._on_step

    def dies_at_250(self):
        if self.model.num_timesteps == 250:  # mid-episode, after the checkpoint at 200
            raise SimulatedKill
        return on_step(self)

    monkeypatch.setattr(sb3._Chunk, "_on_step", dies_at_250)
    with pytest.raises(SimulatedKill):
        cli.main([*args, "--out", str(out_dir)])
    monkeypatch.setattr(sb3._Chunk, "_on_step", on_step)
    run_dir = only_run_dir(out_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 200

    assert cli.main(["train-agent", "--resume", str(run_dir), "--quiet"]) == 0
    assert read_metrics(run_dir) == read_metrics(whole)


def _round_trip(agent, tmp_path):
    return load_checkpoint(save_checkpoint({"a": agent.state_dict()}, tmp_path / "a.pt"))["a"]


def test_state_dict_round_trip_acts_identically(tmp_path):
    cfg = sb3.SACConfig(**sb3.SAC.SMOKE, task="pendulum")
    env = make_agent_env("pendulum", seed=0)
    agent = sb3.SAC(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 150, lambda metrics, step: None)
    assert agent.env_steps == 200  # the episode running at 150 is finished
    path = save_checkpoint({"agent": agent.state_dict()}, tmp_path / "a.pt")
    state = load_checkpoint(path)["agent"]  # weights_only=True

    other_env = make_agent_env("pendulum", seed=1)
    other = sb3.SAC(cfg, other_env, torch.device("cpu"), seed=1)
    other.load_state_dict(state)
    assert other.env_steps == 200 and other.model.replay_buffer.pos == 200
    obs, _ = make_agent_env("pendulum").reset(seed=5)
    np.testing.assert_array_equal(agent.act(obs)[0], other.act(obs)[0])
    saved = agent.model.replay_buffer
    np.testing.assert_array_equal(
        saved.observations[:200], other.model.replay_buffer.observations[:200]
    )
    rng = agent.model.action_space.np_random.bit_generator.state
    assert other.model.action_space.np_random.bit_generator.state == rng
    assert other.model.log_ent_coef.item() == agent.model.log_ent_coef.item()


def test_ppo_rollouts_continue_across_chunks():
    cfg = sb3.PPOConfig(**sb3.PPO.SMOKE, task="pendulum")  # rollouts of 64 steps
    env = make_agent_env("pendulum", seed=0)
    agent = sb3.PPO(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 150, lambda metrics, step: None)
    assert agent.model.rollout_buffer.pos == 200 - 3 * 64  # carried into the next chunk
    agent.train_until(env, 300, lambda metrics, step: None)
    assert agent.model.rollout_buffer.pos == 300 - 4 * 64  # not restarted at 200
    assert agent.model._n_updates == 4 * cfg.n_epochs


def test_normalisation_statistics_are_saved(tmp_path):
    cfg = sb3.PPOConfig(**sb3.PPO.SMOKE, normalize=True, task="pendulum")
    env = make_agent_env("pendulum", seed=0)
    agent = sb3.PPO(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 100, lambda metrics, step: None)
    state = _round_trip(agent, tmp_path)
    other = sb3.PPO(cfg, make_agent_env("pendulum", seed=1), torch.device("cpu"), seed=1)
    other.load_state_dict(state)
    np.testing.assert_array_equal(
        other.vec_normalize.obs_rms.mean, agent.vec_normalize.obs_rms.mean
    )
    obs = np.array([0.5, -0.5, 1.0], np.float32)
    np.testing.assert_array_equal(agent.act(obs)[0], other.act(obs)[0])


def test_sac_learns_from_frames_with_a_cnn_and_resumes_them(tmp_path):
    cfg = sb3.SACConfig(**{**sb3.SAC.SMOKE, "learning_starts": 20, "batch_size": 8})
    env = make_agent_env("inverted-pendulum", "pixels", seed=0)
    agent = sb3.SAC(cfg, env, torch.device("cpu"), seed=0)
    assert isinstance(agent.model.actor.features_extractor, NatureCNN)
    before = [p.clone() for p in agent.model.actor.features_extractor.parameters()]
    agent.train_until(env, 40, lambda metrics, step: None)
    after = agent.model.actor.features_extractor.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    buffer = agent.model.replay_buffer
    assert buffer.observations.dtype == np.uint8 and buffer.observations.shape[1:] == (1, 3, 64, 64)
    assert buffer.observations[: buffer.pos].any()  # real frames were stored

    other = sb3.SAC(cfg, make_agent_env("inverted-pendulum", "pixels"), torch.device("cpu"), 1)
    other.load_state_dict(_round_trip(agent, tmp_path))  # weights_only=True
    np.testing.assert_array_equal(other.model.replay_buffer.observations, buffer.observations)
    frame, _ = make_agent_env("inverted-pendulum", "pixels").reset(seed=5)
    np.testing.assert_array_equal(agent.act(frame)[0], other.act(frame)[0])


def test_frames_are_not_normalised_but_rewards_are(tmp_path):
    cfg = sb3.PPOConfig(**sb3.PPO.SMOKE, normalize=True)
    env = make_agent_env("inverted-pendulum", "pixels", seed=0)
    agent = sb3.PPO(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 70, lambda metrics, step: None)
    frame, _ = env.reset(seed=3)
    np.testing.assert_array_equal(agent.vec_normalize.normalize_obs(frame), frame)
    state = _round_trip(agent, tmp_path)
    assert state["normalize"]["ret_count"] > 1 and "obs_mean" not in state["normalize"]
    other = sb3.PPO(cfg, make_agent_env("inverted-pendulum", "pixels"), torch.device("cpu"), 1)
    other.load_state_dict(state)
    np.testing.assert_array_equal(agent.act(frame)[0], other.act(frame)[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "sac", "--objective", "efe"],
         "invalid objective='efe': must be one of reward for agent 'sac'"),
        (["--agent", "ppo", "--objective", "preference"], "invalid objective='preference'"),
        (["--agent", "td3", "--obs", "depth"], "invalid obs='depth'"),
        (["--agent", "sac", "--set", "ent_coef=-1"], "invalid ent_coef=-1"),
        (["--agent", "sac", "--set", "learning_rat=1"], "unknown key(s) learning_rat"),
    ],
)  # fmt: skip
def test_sb3_user_errors_exit_2(args, message, out_dir, capsys):
    assert cli.main(["train-agent", *args, "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out_dir.exists()


def test_sac_and_td3_need_continuous_actions(out_dir, capsys):
    args = ["train-agent", "--agent", "sac", "--env", "gridworld", "--preset", "smoke"]
    assert cli.main([*args, "--out", str(out_dir), "--quiet"]) == 2
    assert "needs continuous (Box) actions" in capsys.readouterr().err


@pytest.mark.video
def test_record_films_a_trained_run(out_dir, tmp_path, capsys):
    args = ["train-agent", "--agent", "td3", *SMOKE, "--steps", "200", "--out", str(out_dir)]
    assert cli.main(args) == 0
    run_dir = only_run_dir(out_dir)
    record = ["record", "--run", str(run_dir), "--episodes", "1",
              "--size", "32", "--max-steps", "5", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert cli.main(record) == 0  # the task and observations default to the run's
    (video,) = tmp_path.glob("record/pendulum/*/videos/episode-0.mp4")
    assert video.stat().st_size > 0
    capsys.readouterr()
    other_task = [*record, "--env", "mountaincar"]
    assert cli.main(other_task) == 2
    assert "record it with --env pendulum --obs-mode state" in capsys.readouterr().err


def test_sac_learns_pendulum_within_2000_steps(out_dir):
    # Swing-up from 20 episodes: SAC with small nets reached about -200 here (a random
    # policy: about -1,300) in ~10 s; half of that gain is asked for.
    args = ["train-agent", "--agent", "sac", "--env", "pendulum", "--steps", "2000",
            "--eval-every", "2000", "--eval-episodes", "5", "--set", "net_arch=[64, 64]",
            "--out", str(out_dir), "--quiet"]  # fmt: skip
    assert cli.main(args) == 0
    run_dir = only_run_dir(out_dir)
    trained = json.loads((run_dir / "summary.json").read_text())["metrics"]["eval/return"]
    env = make_agent_env("pendulum", seed=0)
    random, _ = evaluate_agent(RandomActor(env), env, episodes=5, seed=0)
    assert random["eval/return"] < -1000
    assert trained > random["eval/return"] + 500, (trained, random)


class RandomActor:
    def __init__(self, env):
        self.space = env.action_space

    def act(self, obs, state=None, explore=False):
        return self.space.sample(), None
