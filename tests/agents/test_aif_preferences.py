"""Preference sources (log p̃ in observation or latent space) and goal samplers."""

import numpy as np
import pytest
import torch

from agents.active_inference.agent import ActiveInferenceAgent
from agents.active_inference.config import Config
from agents.active_inference.imagination import Imagined, RSSMImaginer, imagine
from agents.active_inference.preferences import (
    ContrastiveGoal,
    DensityPreference,
    GoalSampler,
    LatentGoal,
    PixelGoal,
    RewardPreference,
    diffusion_goal_prior,
)
from agents.base import make_agent_env
from generative.base import DataSpec
from world_models.ensemble import EnsembleConfig, EnsembleDynamics
from world_models.priors import LatentPriorConfig
from world_models.rssm import RSSM, RSSMConfig
from world_models.state import LatentState


def _step(obs=None, stoch=None, reward=None):
    rows = (obs if obs is not None else stoch if stoch is not None else reward).shape[0]
    stoch = torch.zeros(rows, 1) if stoch is None else stoch
    return Imagined(LatentState(stoch, stoch), obs, torch.zeros(rows), reward=reward)


def test_pixel_goal_prefers_the_goal_image():
    torch.manual_seed(0)
    goal = torch.randint(0, 256, (3, 8, 8)).to(torch.uint8)
    images = torch.stack([goal.float(), (255 - goal).float(), goal.float() + 20]).clamp(0, 255)
    for likelihood in ("laplace", "gaussian"):
        pref = PixelGoal((3, 8, 8), scale=0.1, likelihood=likelihood)
        pref.set_goal(goal)
        scores = pref(_step(obs=images))
        assert scores.shape == (3,)
        assert scores[0] > scores[2] > scores[1]
    # Laplace, b = 0.1, pixel-exact: each of the 192 pixels scores log(1 / 2b) = log 5.
    pref = PixelGoal((3, 8, 8), scale=0.1)
    pref.set_goal(goal)
    assert float(pref(_step(obs=goal.float()[None]))) == pytest.approx(192 * np.log(5), rel=1e-5)


def test_latent_goal_scores_similarity_to_the_encoded_goal():
    torch.manual_seed(0)
    model = EnsembleDynamics(EnsembleConfig(**EnsembleDynamics.SMOKE), DataSpec("vector", (2,)), 1)
    pref = LatentGoal(model, scale=0.5)
    pref.set_goal(torch.tensor([0.5, -0.5]))  # the ensemble's latent is the observation
    states = torch.tensor([[0.5, -0.5], [0.6, -0.5], [2.0, 2.0]])
    scores = pref(_step(stoch=states))
    assert scores[0] > scores[1] > scores[2]
    gaussian = torch.distributions.Normal(torch.tensor([0.5, -0.5]), 0.5)
    assert torch.allclose(scores, gaussian.log_prob(states).sum(-1))


def test_reward_preference_is_reward_over_temperature():
    reward = torch.tensor([1.0, -2.0])
    assert torch.allclose(RewardPreference(0.5)(_step(reward=reward)), reward / 0.5)


def test_flow_density_prefers_demonstrated_states():
    torch.manual_seed(0)
    demos = torch.tensor([0.5, 1.0]) + 0.05 * torch.randn(200, 2)
    pref = DensityPreference(2, LatentPriorConfig(kind="flow", hidden=16, layers=2, steps=150))
    pref.fit(demos)
    with torch.no_grad():
        near, far = pref(_step(obs=torch.tensor([[0.5, 1.0], [-1.0, 0.0]])))
    assert near > far + 10


def test_contrastive_goal_learns_to_pick_the_matching_observation():
    torch.manual_seed(0)
    model = RSSM(RSSMConfig(**RSSM.SMOKE), DataSpec("vector", (3,)), 1)
    imaginer = RSSMImaginer(model)
    pref = ContrastiveGoal(model, imaginer, model.feature_size, dim=8, negatives=4)
    optimizer = torch.optim.Adam(pref.parameters(), lr=1e-2)
    obs = torch.randn(32, 3)
    with torch.no_grad():
        states = model.observe(obs[:, None], torch.zeros(32, 1, 1), sample=False)[:, 0]
    losses = []
    for _ in range(300):
        loss, metrics = pref.loss(states, obs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(metrics["losses/contrastive"])
    assert losses[-1] < 0.5 * losses[0]
    pref.set_goal(obs[0])
    pref.set_negatives(obs[1:5])
    with torch.no_grad():
        scores = pref(Imagined(states[:5], None, torch.zeros(5)))
    # log softmax over {goal} + 4 negatives: at most 0, and highest for the goal's own state.
    assert (scores <= 1e-6).all() and int(scores.argmax()) == 0


def test_goal_samplers_are_reproducible_per_episode():
    goals = torch.arange(12.0).reshape(4, 3)
    fixed = GoalSampler("file", seed=0, goals=goals)
    assert all(torch.equal(fixed.sample(k, torch.zeros(3)), goals[0]) for k in range(3))
    varied = GoalSampler("file", seed=0, goals=goals, per_episode=True)
    drawn = [varied.sample(k, torch.zeros(3)) for k in range(8)]
    assert len({tuple(g.tolist()) for g in drawn}) > 1
    assert all(torch.equal(varied.sample(k, torch.zeros(3)), drawn[k]) for k in range(8))
    torch.manual_seed(0)
    prior = diffusion_goal_prior(torch.tensor([0.5, -0.5]) + 0.1 * torch.randn(64, 2), steps=20)
    diffusion = GoalSampler("diffusion", seed=0, prior=prior)
    before = torch.get_rng_state()
    a, b = diffusion.sample(3, torch.zeros(2)), diffusion.sample(3, torch.zeros(2))
    assert a.shape == (2,) and torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is untouched


def test_rssm_latent_information_gain_and_decoded_preferences():
    torch.manual_seed(0)
    env = make_agent_env("pendulum", seed=0)
    cfg = Config(**{**ActiveInferenceAgent.SMOKE, "world_model": "rssm", "objective": "efe"})
    agent = ActiveInferenceAgent(cfg, env, torch.device("cpu"), 0)
    obs, _ = env.reset(seed=0)
    latent = agent._filter(None, torch.as_tensor(obs))
    needs = agent.objective.logging_needs().union(agent.preference.needs)
    with torch.no_grad():
        rollout = imagine(agent.imaginer, latent, torch.zeros(4, 3, 1), agent.preference, 2, needs)
    assert rollout.latent_kl.shape == (4, 2, 3) and (rollout.latent_kl >= 0).all()
    assert rollout.log_preference.shape == (4, 2, 3)
    terms = agent.objective.terms(rollout)
    assert set(terms) >= {"efe/pragmatic", "efe/epistemic", "efe/risk", "efe/ambiguity"}


def test_agent_with_demonstrations_and_goals_from_files(tmp_path):
    torch.manual_seed(0)
    env = make_agent_env("pendulum", seed=0)
    demos = np.tile(np.array([1.0, 0.0, 0.0], np.float32), (50, 1))
    demos += 0.05 * np.random.default_rng(0).standard_normal(demos.shape).astype(np.float32)
    np.savez(tmp_path / "demos.npz", obs=demos)
    common = {**ActiveInferenceAgent.SMOKE, "prefill": 20, "train_every": 10}
    flow = Config(**common, preference="flow", demos=str(tmp_path / "demos.npz"))
    agent = ActiveInferenceAgent(flow, env, torch.device("cpu"), 0)
    records = []
    agent.train_until(env, 150, lambda m, s: records.append(m))
    assert agent.env_steps == 200 and np.isfinite(records[-1]["efe/pragmatic"])
    latent = Config(
        **common,
        preference="latent-goal",
        goal_source="diffusion",
        demos=str(tmp_path / "demos.npz"),
    )
    agent = ActiveInferenceAgent(latent, env, torch.device("cpu"), 0)
    agent.train_until(env, 150, lambda m, s: None)
    # The goal drawn for the last episode is near the demonstrations (upright, still).
    assert torch.allclose(agent.preference.goal, torch.tensor([1.0, 0.0, 0.0]), atol=0.5)
