"""The train-agent loop, tested with a stub agent in pendulum (episodes of 100 decisions)."""

import json

import gymnasium as gym
import numpy as np
import pytest
import yaml
from run_files import only_run_dir, read_metrics
from stub_agent import SimulatedKill, StubAgent  # tests/runs is put on sys.path by conftest

import agents
from agents.base import make_agent_env
from envs.tasks import get_task
from runs import cli
from runs.checkpoint import load_checkpoint
from runs.train_agent import evaluate_agent

# pendulum: 200 env steps per episode, action repeat 2 -> 100 agent steps per episode.
EPISODE = 100
BASE = ["train-agent", "--agent", "stub", "--env", "pendulum", "--eval-episodes", "2",
        "--steps", "450", "--eval-every", "200", "--quiet"]  # fmt: skip


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setitem(agents.AGENTS, "stub", ("stub_agent:StubAgent", "a stub agent"))
    monkeypatch.setattr(StubAgent, "calls", {})
    monkeypatch.setattr(StubAgent, "crash_at", 0)
    return StubAgent


def test_chunks_evaluations_and_checkpoints(stub, out_dir):
    assert cli.main([*BASE, "--out", str(out_dir)]) == 0
    run_dir = only_run_dir(out_dir)
    assert run_dir.parent.name == "stub-reward-pendulum"
    records = read_metrics(run_dir)
    # Chunks end at the first episode end at or after 200 and 400; the budget of 450
    # truncates the fifth episode halfway.
    evals = [r["step"] for r in records if "eval/return" in r]
    assert evals == [200, 400, 450]
    episodes = [r["step"] for r in records if "charts/episodic_return" in r]
    assert episodes == [100, 200, 300, 400, 450]
    assert [r["charts/episodic_length"] for r in records if "charts/episodic_length" in r] == [
        EPISODE
    ] * 4 + [EPISODE // 2]
    assert all(r["eval/length"] == EPISODE for r in records if "eval/length" in r)
    assert stub.calls["train_until"] == 3
    assert stub.calls["act_eval"] == 3 * 2 * EPISODE
    assert stub.calls["act_explore"] == 450
    assert "load" not in stub.calls
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 450 and state["agent"]["env_steps"] == 450
    assert state["agent"]["episode"] == 5 and state["progress"]["evaluations"] == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 450 and summary["metrics"]["evaluations"] == 3
    assert summary["metrics"]["eval/return"] == records[-1]["eval/return"]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["steps"] == 450 and saved["eval_every"] == 200 and saved["agent"] == "stub"


def test_killed_run_resumes_to_identical_metrics(stub, out_dir, tmp_path):
    assert cli.main([*BASE, "--out", str(tmp_path / "whole")]) == 0
    whole = only_run_dir(tmp_path / "whole")

    stub.crash_at = 350  # in the second chunk (to 400), after the checkpoint at 200
    with pytest.raises(SimulatedKill):
        cli.main([*BASE, "--out", str(out_dir)])
    run_dir = only_run_dir(out_dir)
    assert read_metrics(run_dir)[-1]["step"] == 300  # an episode logged after the checkpoint
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 200

    stub.crash_at, stub.calls = 0, {}
    assert cli.main(["train-agent", "--resume", str(run_dir), "--quiet"]) == 0
    assert stub.calls["load"] == 1
    assert stub.calls["train_until"] == 2  # the chunks to 400 and 450
    assert read_metrics(run_dir) == read_metrics(whole)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["evaluations"] == 3 and summary["steps"] == 450


def test_resuming_a_finished_run_trains_no_further(stub, out_dir):
    assert cli.main([*BASE, "--out", str(out_dir)]) == 0
    run_dir = only_run_dir(out_dir)
    before = read_metrics(run_dir)
    stub.calls = {}
    assert cli.main(["train-agent", "--resume", str(run_dir), "--quiet"]) == 0
    assert "train_until" not in stub.calls and stub.calls["load"] == 1
    assert read_metrics(run_dir) == before
    assert json.loads((run_dir / "summary.json").read_text())["metrics"]["evaluations"] == 3


@pytest.mark.video
def test_video_films_each_evaluation(stub, out_dir):
    args = [*BASE, "--steps", "200", "--eval-episodes", "1", "--video", "--out", str(out_dir)]
    assert cli.main(args) == 0
    videos = (only_run_dir(out_dir) / "videos").glob("*.mp4")
    assert [p.name for p in videos] == ["eval-0000200.mp4"]


def test_smoke_preset_and_set_reach_the_agent_config(stub, out_dir):
    # YAML reads 125e-3 (no dot) as text; the float field turns it into 0.125.
    args = ["train-agent", "--agent", "stub", "--preset", "smoke", "--set", "scale=125e-3",
            "--objective", "preference", "--out", str(out_dir), "--quiet"]  # fmt: skip
    assert cli.main(args) == 0
    run_dir = only_run_dir(out_dir)
    assert run_dir.parent.name == "stub-preference-pendulum"
    info = load_checkpoint(run_dir / "checkpoints" / "last.pt")["info"]["agent_config"]
    assert info == {"scale": 0.125, "task": "pendulum", "objective": "preference"}
    assert [r["step"] for r in read_metrics(run_dir) if "eval/return" in r] == [200, 400]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "stub", "--objective", "efe"],
         "invalid objective='efe': must be one of reward, preference for agent 'stub'"),
        (["--agent", "stub", "--obs", "pixels"], "invalid obs='pixels'"),
        (["--agent", "stub", "--set", "objective=preference"], "give objective as --objective"),
        (["--agent", "stub", "--set", "nope=1"], "unknown key(s) nope in --set for stub"),
        (["--agent", "stub", "--set", "scale=high"],
         "invalid --set for stub.scale='high': expected a number"),
        (["--agent", "stub", "--set", "scale=true"],
         "invalid --set for stub.scale=True: expected a number"),
        (["--agent", "stubb"], "unknown agent 'stubb'; did you mean 'stub'?"),
        (["--agent", "stub", "--env", "pendulm"], "unknown task 'pendulm'; did you mean"),
        (["--agent", "stub", "--steps", "0"], "invalid steps=0: must be > 0"),
        (["--agent", "stub", "--objective", "joy"], "invalid objective='joy'"),
    ],
)  # fmt: skip
def test_user_errors_exit_2_before_any_work(stub, out_dir, capsys, args, message):
    assert cli.main(["train-agent", *args, "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out_dir.exists()


class _PassesThrough(gym.Env):
    """Three steps; the goal test holds at the second only."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 1.0, False, self.t == 3, {"success": self.t == 2}


class _Still:
    def act(self, obs, state=None, explore=False):
        return np.zeros(1, np.float32), state


def test_evaluation_tells_success_at_some_step_from_success_at_the_end():
    metrics, video = evaluate_agent(_Still(), _PassesThrough(), episodes=2, seed=0)
    assert metrics["eval/success"] == 1.0 and metrics["eval/final_success"] == 0.0
    assert metrics["eval/return"] == 3.0 and metrics["eval/length"] == 3.0 and video is None


def test_a_balancing_task_succeeds_only_if_its_goal_still_holds_at_the_end():
    task = get_task("inverted-pendulum")
    assert task.hold_goal and not get_task("mountaincar").hold_goal
    assert task.episode_success(False, True) and not task.episode_success(True, False)
    assert get_task("mountaincar").episode_success(True, False)
    env = make_agent_env("inverted-pendulum", seed=0)
    _, info = env.reset(seed=0)
    assert info["success"]  # it starts upright: "held at some step" would count it
    metrics, _ = evaluate_agent(_Still(), env, episodes=2, seed=0)
    assert metrics["eval/length"] < 50  # upright for a few steps, then it falls
    assert metrics["eval/success"] == 0.0 and metrics["eval/final_success"] == 0.0
