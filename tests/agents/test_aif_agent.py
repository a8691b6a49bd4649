"""The active-inference agent: the loop through train-agent, resume, checkpoints, learning."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from run_files import SimulatedKill, only_run_dir, read_metrics

from agents.active_inference.agent import ActiveInferenceAgent
from agents.active_inference.config import Config
from agents.base import is_timing, make_agent_env
from envs.preferences import Feature
from envs.tasks import TaskSpec
from generative.base import TrainingError
from runs import cli
from runs.checkpoint import load_checkpoint, save_checkpoint
from runs.train_agent import TrainAgentConfig, agent_config, resolve_defaults

# Pendulum with the smoke preset (episodes of 100 decisions): 200 steps, evaluated at 100, 200.
SMOKE = ["--env", "pendulum", "--preset", "smoke", "--steps", "200", "--eval-every", "100"]
SMOKE += ["--eval-episodes", "1", "--quiet"]


@pytest.mark.parametrize(
    ("agent", "objective", "planner"),
    [
        ("aif", "reward", "cem"),
        ("aif", "preference", "mppi"),
        ("aif", "efe", "cem"),
        ("aif", "feef", "policy"),
        ("mbrl", "reward", "cem"),
    ],
)
def test_loop_runs_resumes_and_continues_identically_for_every_objective(
    agent, objective, planner, out_dir, tmp_path, monkeypatch
):
    args = ["train-agent", "--agent", agent, "--objective", objective, "--planner", planner]
    args += SMOKE
    assert cli.main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = only_run_dir(tmp_path / "whole")
    records = read_metrics(whole)
    assert [r["step"] for r in records if "eval/return" in r] == [100, 200]
    episodes = [r for r in records if "charts/episodic_return" in r]
    assert [r["step"] for r in episodes] == [100, 200]
    # The second episode plans: its EFE terms and the world model's losses are logged.
    logged = episodes[-1]
    for name in ("efe/pragmatic", "efe/epistemic", "efe/risk", "efe/ambiguity", "losses/total"):
        assert np.isfinite(logged[name]), name
    if planner == "policy":
        assert np.isfinite(logged["losses/actor"])
    state = load_checkpoint(whole / "checkpoints" / "last.pt")  # weights_only=True
    assert state["agent"]["env_steps"] == 200 and state["agent"]["episode"] == 2

    # The same run killed mid-episode after the checkpoint at 100, then resumed.
    train_phase = ActiveInferenceAgent._train_phase

    def dies_at_150(self):
        if self.env_steps == 150:
            raise SimulatedKill
        train_phase(self)

    monkeypatch.setattr(ActiveInferenceAgent, "_train_phase", dies_at_150)
    with pytest.raises(SimulatedKill):
        cli.main([*args, "--out", str(out_dir)])
    monkeypatch.setattr(ActiveInferenceAgent, "_train_phase", train_phase)
    run_dir = only_run_dir(out_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 100
    assert cli.main(["train-agent", "--resume", str(run_dir), "--quiet"]) == 0
    assert read_metrics(run_dir) == records


@pytest.mark.parametrize("planner", ["policy", "cem"])
def test_pixels_run_through_the_cli_with_the_default_preference(planner, out_dir):
    # preference=auto scores pixels by the predicted reward (the task's density reads state
    # vectors); an RSSM on 64x64 frames learns, plans and is evaluated. Inverted-pendulum's
    # short episodes leave the random prefill within this budget.
    args = ["train-agent", "--agent", "aif", "--env", "inverted-pendulum", "--obs", "pixels"]
    args += ["--objective", "preference", "--planner", planner, "--preset", "smoke"]
    args += ["--steps", "60", "--eval-every", "60", "--eval-episodes", "1", "--quiet"]
    args += ["--set", "prefill=30", "train_every=10", "iterations=1", "candidates=16"]
    assert cli.main([*args, "--out", str(out_dir)]) == 0
    records = read_metrics(only_run_dir(out_dir))
    assert [r["step"] for r in records if "eval/return" in r] == [60]
    planned = [r for r in records if "efe/pragmatic" in r]
    assert planned and np.isfinite(planned[-1]["losses/total"])


class Records:
    """A ``log`` function that keeps ``(step, metrics)``, wall-time metrics left out."""

    def __init__(self):
        self.items = []

    def __call__(self, metrics, step):
        self.items.append((step, {k: v for k, v in metrics.items() if not is_timing(k)}))


def _smoke_config(**changes):
    return Config(**{**ActiveInferenceAgent.SMOKE, "task": "pendulum", **changes})


@pytest.mark.parametrize("planner", ["cem", "policy"])
def test_inverted_pendulum_plans_with_a_predicted_fall_as_failure(planner):
    cfg = _smoke_config(
        task="inverted-pendulum", objective="efe", planner=planner, end_is_failure=True
    )
    env = make_agent_env("inverted-pendulum", seed=0)
    torch.manual_seed(0)
    agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), seed=0)
    assert agent._planning_needs().cont
    logged = []
    agent.train_until(env, 60, lambda metrics, step: logged.append(metrics))
    planned = [m for m in logged if "efe/cost" in m]
    assert planned and all(np.isfinite(m["efe/cost"]) for m in planned)


def test_policy_proposals_train_the_policy_and_reach_the_planner(monkeypatch):
    cfg = _smoke_config(policy_proposals=4, prefill=20, train_every=10)
    env = make_agent_env("pendulum", seed=0)
    torch.manual_seed(0)
    agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), seed=0)
    plan, proposed = agent.planner.plan, []

    def spy(cost, mean=None, generator=None, proposals=None):
        proposed.append(proposals)
        return plan(cost, mean, generator, proposals)

    monkeypatch.setattr(agent.planner, "plan", spy)
    logged = []
    agent.train_until(env, 150, lambda metrics, step: logged.append(metrics))  # 1 random episode
    assert proposed and {tuple(p.shape) for p in proposed} == {(4, cfg.horizon, 1)}
    assert all(p.abs().max() <= 2.0 for p in proposed)  # pendulum's torque bounds
    assert np.isfinite(logged[-1]["losses/actor"])
    assert "policy" in agent.state_dict()


def test_state_dict_round_trip_continues_identically(tmp_path):
    cfg = _smoke_config(planner="policy", objective="efe", prefill=20, train_every=10)
    env = make_agent_env("pendulum", seed=0)
    torch.manual_seed(0)
    agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 50, lambda metrics, step: None)
    assert agent.env_steps == 100  # the episode running at 50 is finished
    path = save_checkpoint({"agent": agent.state_dict()}, tmp_path / "a.pt")
    state = load_checkpoint(path)["agent"]  # weights_only=True
    clone = ActiveInferenceAgent(cfg, make_agent_env("pendulum", seed=0), torch.device("cpu"), 0)
    clone.load_state_dict(state)
    assert clone.replay.num_steps == agent.replay.num_steps == 100

    logs = []
    for a in (agent, clone):
        torch.manual_seed(1)
        records = Records()
        a.train_until(make_agent_env("pendulum", seed=0), 200, records)
        logs.append(records.items)
    assert logs[0] == logs[1]


def test_a_non_finite_update_stops_training_at_its_step():
    cfg = _smoke_config(prefill=20, train_every=10)
    env = make_agent_env("pendulum", seed=0)
    torch.manual_seed(0)
    agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 50, lambda metrics, step: None)
    assert agent.env_steps == 100
    agent.replay._obs.fill_(float("nan"))  # corrupt data: every chunk it samples is NaN
    with pytest.raises(TrainingError, match=r"non-finite losses/\S+=nan at step 110"):
        agent.train_until(env, 200, lambda metrics, step: None)


def test_a_nested_set_keeps_the_tasks_tuned_policy_fields():
    run = TrainAgentConfig(agent="aif", env="inverted-pendulum", planner="policy")
    tuned = agent_config(resolve_defaults(run)).policy
    assert (tuned.horizon, tuned.entropy_scale) == (5, 0.01)
    changed = dataclasses.replace(run, set=("policy={hidden: [8]}",))
    policy = agent_config(resolve_defaults(changed)).policy
    assert policy.hidden == (8,) and (policy.horizon, policy.entropy_scale) == (5, 0.01)


def test_switching_the_objective_changes_nothing_but_the_score():
    env = make_agent_env("pendulum", seed=0)
    states, agents = [], []
    for objective in ("reward", "preference", "efe", "feef"):
        torch.manual_seed(0)
        agent = ActiveInferenceAgent(
            _smoke_config(objective=objective), env, torch.device("cpu"), 0
        )
        agents.append(agent)
        states.append(agent.state_dict())
    for agent, state in zip(agents[1:], states[1:], strict=True):
        assert agent.planner.cfg == agents[0].planner.cfg
        assert type(agent.model) is type(agents[0].model)
        for key, value in state["world_model"].items():
            assert torch.equal(value, states[0]["world_model"][key]), key
    assert [a.objective.cfg.objective for a in agents] == ["reward", "preference", "efe", "feef"]
    others = {f: {getattr(a.objective.cfg, f) for a in agents} for f in ("epistemic", "discount")}
    assert all(len(v) == 1 for v in others.values())


@pytest.mark.parametrize(
    ("world_model", "objective"), [("ensemble", "efe"), ("rssm", "efe"), ("ensemble", "reward")]
)
def test_planning_in_bfloat16_acts_like_float32(world_model, objective):
    """The same plan's imagined futures in both precisions; bfloat16 explicitly, so that a
    machine whose auto is float32 runs it too."""
    env = make_agent_env("pendulum", seed=0)
    obs, _ = env.reset(seed=0)
    actions = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        cfg = _smoke_config(world_model=world_model, objective=objective, precision=precision)
        agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), 0)
        torch.manual_seed(1)
        action, state = agent.act(obs)
        actions[precision] = action
        assert np.isfinite(action).all() and state.plan is not None
    # The same seed draws the same candidates; rounding may swap an elite or two at most
    # (the plan is the mean of the elites' action sequences).
    assert np.abs(actions["float32"] - actions["bfloat16"]).max() < 0.1


DIFFUSION_PRIOR = ("stoch_prior=diffusion",)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"obs": "pixels", "world_model": "ensemble"}, "world_model"),
        ({"epistemic": "latent"}, "epistemic"),
        ({"world_model": "rssm", "epistemic": "mixture"}, "epistemic"),
        ({"epistemic": "knn", "particles": 2}, "particles"),
        ({"preference": "flow"}, "demos"),
        ({"preference": "pixel-goal"}, "preference"),
        ({"obs": "pixels", "preference": "task"}, "preference"),
        ({"preference": "latent-goal", "goal_source": "file"}, "goals"),
        ({"epistemic_scale": -1.0}, "epistemic_scale"),
        ({"planner": "icem"}, "planner"),
        ({"planner": "mppi", "keep_elites": True}, "keep_elites"),  # MPPI keeps no elites
        ({"precision": "half"}, "precision"),
        ({"epistemic": "knn", "planner": "policy", "objective": "efe"}, "epistemic"),
        ({"epistemic": "knn", "policy_proposals": 4, "objective": "efe"}, "epistemic"),
        ({"planner": "policy", "policy_proposals": 4}, "policy_proposals"),
        ({"policy_proposals": 400}, "policy_proposals"),  # not below candidates
        ({"policy_proposals": -1}, "policy_proposals"),
        # The latent estimator compares Gaussian stats, which a diffusion prior's are not;
        # auto picks it for the rssm.
        ({"world_model": "rssm", "objective": "efe", "model": DIFFUSION_PRIOR}, "epistemic"),
        ({"world_model": "rssm", "epistemic": "latent", "model": DIFFUSION_PRIOR}, "epistemic"),
    ],
)
def test_invalid_settings_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"invalid {field}="):
        Config(**changes)


def test_auto_preference_reads_the_task_for_state_and_the_reward_for_pixels():
    assert Config().preference_source == "task"
    assert Config(obs="pixels").preference_source == "reward"
    assert Config(
        obs="pixels", preference="latent-goal", goal_source="file", goals="g.npz"
    ).uses_goal


def test_diffusion_prior_rssm_takes_knn_and_names_the_choices():
    with pytest.raises(ValueError, match="knn with the rssm's stoch_prior=diffusion"):
        Config(world_model="rssm", objective="efe", model=DIFFUSION_PRIOR)
    assert Config(world_model="rssm", objective="efe", epistemic="knn", model=DIFFUSION_PRIOR)
    # Objectives without an epistemic term never use the estimator: auto is fine there.
    assert Config(world_model="rssm", objective="preference", model=DIFFUSION_PRIOR)


# -- a tiny fast task: slide a point to x = 0.5 -----------------------------------------------


class Slide(gym.Env):
    """``x' = clip(x + 0.2 a, -1, 1)`` from ``x ≈ -0.8``; 20 steps; reward ``-|x - 0.5|``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = -0.8 + 0.1 * float(self.np_random.uniform(-1, 1)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.2 * float(np.asarray(action).reshape(-1)[0]), -1, 1))
        self.t += 1
        reward = -abs(self.x - 0.5)
        return np.array([self.x], np.float32), reward, False, self.t >= 20, {}


SLIDE = TaskSpec(
    name="slide",
    gym_id="none",
    max_episode_steps=20,
    action_repeat=1,
    description="slide a point to 0.5",
    reward="-|x - 0.5|",
    goal="x ~ N(0.5, 0.1)",
    kind="classic",
    features=(Feature("x", 0, 0.5, 0.1),),
    obs_dim=1,
)


def _returns(policy, env, episodes=5):
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=1000 + k)
        state, ret, done = None, 0.0, False
        while not done:
            action, state = policy(obs, state)
            obs, reward, terminated, truncated, _ = env.step(action)
            ret, done = ret + reward, terminated or truncated
        out.append(ret)
    return float(np.mean(out))


@pytest.mark.parametrize("objective", ["preference", "efe"])
def test_agent_beats_a_random_policy_on_a_tiny_task(objective, monkeypatch):
    monkeypatch.setattr("envs.tasks.get_task", lambda name: SLIDE)
    cfg = _smoke_config(
        task="slide", objective=objective, particles=3, prefill=60, train_every=20, train_steps=20
    )
    env = Slide()
    torch.manual_seed(0)
    agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), seed=0)
    agent.train_until(env, 200, lambda metrics, step: None)
    trained = _returns(lambda o, s: agent.act(o, s), Slide())
    env.action_space.seed(0)
    random = _returns(lambda o, s: (env.action_space.sample(), s), Slide())
    # Random: about -25 (the point wanders near its start); reaching 0.5 in 7 steps and
    # staying costs about -5.
    assert trained > random + 10, (trained, random)
