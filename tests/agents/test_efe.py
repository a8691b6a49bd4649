"""Expected-free-energy terms on Gaussian cases that can be worked out by hand."""

import dataclasses
import math

import pytest
import torch

from agents.active_inference import efe
from agents.active_inference.imagination import Rollout
from agents.active_inference.objective import Objective, ObjectiveConfig
from agents.active_inference.planner import PlannerConfig, SamplingPlanner


def test_gaussian_entropy_and_kl_match_torch_distributions():
    mean_q, std_q = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0])
    mean_p, std_p = torch.tensor([0.0, 0.5]), torch.tensor([1.0, 1.5])
    q, p = torch.distributions.Normal(mean_q, std_q), torch.distributions.Normal(mean_p, std_p)
    assert efe.gaussian_entropy(std_q) == pytest.approx(float(q.entropy().sum()), abs=1e-6)
    kl = torch.distributions.kl_divergence(q, p).sum()
    assert efe.gaussian_kl(mean_q, std_q, mean_p, std_p) == pytest.approx(float(kl), abs=1e-6)


def test_spread_is_the_population_variance_over_the_first_axis():
    values = torch.randn(5, 4, 1, 3, 2).transpose(1, 3)  # strided, as members of a rollout
    torch.testing.assert_close(efe.spread(values), values.var(0, unbiased=False))
    assert torch.equal(efe.spread(torch.ones(3, 7)), torch.zeros(7))


def test_risk_is_zero_when_predictions_equal_preferences():
    mean, std = torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.3])
    assert float(efe.gaussian_kl(mean, std, mean, std)) == pytest.approx(0.0, abs=1e-7)
    # The same from samples: E_q[log p̃] by Monte Carlo with the outcome entropy in closed form.
    torch.manual_seed(0)
    preferred = torch.distributions.Normal(mean, std)
    samples = preferred.sample((20000,))  # q(o) = p̃(o)
    pragmatic = preferred.log_prob(samples).sum(-1).mean()
    entropy = efe.gaussian_entropy(std)
    assert float(efe.risk(pragmatic, entropy)) == pytest.approx(0.0, abs=0.02)
    # ... and positive once the predictions move away from the preferences.
    shifted = preferred.log_prob(samples + 0.3).sum(-1).mean()
    assert float(efe.risk(shifted, entropy)) > 0.5


def test_disagreement_is_zero_when_members_agree_and_grows_with_their_spread():
    torch.manual_seed(0)
    base = torch.randn(1, 4, 2, 3, 2)  # (M=1, N, P, H, D)
    agree = base.expand(5, -1, -1, -1, -1)
    assert torch.allclose(efe.ensemble_disagreement(agree), torch.zeros(4, 3))
    std = torch.full_like(agree, 0.2)
    assert torch.allclose(efe.mixture_information_gain(agree, std), torch.zeros(4, 3), atol=1e-6)
    offsets = torch.randn(5, 1, 1, 1, 2)
    gains = [
        float(efe.mixture_information_gain(agree + s * offsets, std).mean())
        for s in (0.1, 0.5, 1.0)
    ]
    spreads = [
        float(efe.ensemble_disagreement(agree + s * offsets).mean()) for s in (0.1, 0.5, 1.0)
    ]
    assert spreads == sorted(spreads) and spreads[0] > 0
    assert gains == sorted(gains) and gains[0] > 0


# The Gaussian case: θ ~ N(0, s²) and o | θ ~ N(θ, σ²), so o ~ N(0, s² + σ²) and
# I(o; θ) = H[o] - H[o | θ] = ½ log(1 + s² / σ²).
S, SIGMA = 1.0, 0.5
CLOSED_FORM = 0.5 * math.log(1 + S**2 / SIGMA**2)  # 0.8047 nats


def test_mixture_information_gain_matches_the_gaussian_closed_form():
    torch.manual_seed(0)
    members = S * torch.randn(20000, 1, 1, 1, 1)  # many members: their mixture is Gaussian
    gain = efe.mixture_information_gain(members, torch.full_like(members, SIGMA))
    assert float(gain) == pytest.approx(CLOSED_FORM, rel=0.02)


def test_knn_information_gain_matches_the_gaussian_closed_form():
    torch.manual_seed(0)
    outcomes = math.sqrt(S**2 + SIGMA**2) * torch.randn(1, 2000, 1, 1)  # (N, P, H, D)
    obs_entropy = efe.gaussian_entropy(torch.full((1, 2000, 1, 1), SIGMA))
    gain = efe.knn_information_gain(outcomes, obs_entropy, k=3)
    assert float(gain) == pytest.approx(CLOSED_FORM, abs=0.06)
    # The entropy estimate itself, in 2-D: H of N(0, I) = log(2πe).
    two_d = torch.randn(3000, 2)
    assert float(efe.knn_entropy(two_d, k=3)) == pytest.approx(
        math.log(2 * math.pi * math.e), abs=0.06
    )


def test_latent_information_gain_matches_the_gaussian_closed_form():
    # Prior s ~ N(0, S²); an imagined o | s ~ N(s, σ²); the exact posterior is Gaussian with
    # variance (1/S² + 1/σ²)^-1 and mean o S² / (S² + σ²); E_o KL[q(s|o) || p(s)] = I(o; s).
    torch.manual_seed(0)
    s = S * torch.randn(1, 20000, 1, 1)
    o = s + SIGMA * torch.randn_like(s)
    post_var = 1 / (1 / S**2 + 1 / SIGMA**2)
    post_mean = o * S**2 / (S**2 + SIGMA**2)
    kl = efe.gaussian_kl(
        post_mean, torch.full_like(o, post_var**0.5), torch.zeros_like(o), torch.full_like(o, S)
    )
    assert float(efe.latent_information_gain(kl)) == pytest.approx(CLOSED_FORM, rel=0.02)


def test_sign_conventions_and_the_efe_feef_identity():
    torch.manual_seed(0)
    pragmatic, epistemic = -torch.rand(3, 4), torch.rand(3, 4)
    ambiguity = torch.randn(3, 4)
    g = efe.expected_free_energy(pragmatic, epistemic)
    assert torch.allclose(g, -(pragmatic + epistemic))
    feef = efe.free_energy_of_expected_future(pragmatic, ambiguity, epistemic)
    assert torch.allclose(g, feef + ambiguity)
    # G = risk + ambiguity when the outcome entropy is ambiguity + information gain.
    assert torch.allclose(efe.risk(pragmatic, ambiguity + epistemic) + ambiguity, g)
    # More pragmatic or epistemic value means a lower G: the planner minimises it.
    assert (efe.expected_free_energy(pragmatic + 1, epistemic) < g).all()
    assert (efe.expected_free_energy(pragmatic, epistemic + 1, scale=2.0) < g).all()
    weights = torch.tensor([1.0, 0.5, 0.0, 1.0])
    total = efe.discounted_sum(torch.ones(3, 4), 0.5, weights)
    assert torch.allclose(total, torch.full((3,), 1 + 0.25 + 0 + 0.125))


# -- the objectives on a toy world: one action a in [-1, 1], one step -------------------------


def toy_rollout(actions, noisy_tv=False, particles=200, members=5):
    """Outcomes of a 1-step, 1-D toy world ``(N, 1, 1) -> Rollout``.

    ``noisy_tv``: a > 0 shows a TV, o ~ N(0, (0.05 + 0.95 a)²) whatever the state (the
    members agree, the observation model is pure noise); a <= 0 a calm o ~ N(0, 0.05²); the
    preference is N(0, 1) on o. Otherwise the preference is flat and the members' predictions
    spread over ``[-a, a]`` for a > 0 (more informative as a grows), agreeing for a <= 0; the
    observation noise is 0.1 everywhere.
    """
    a = actions[:, 0, 0].clamp_min(0)[:, None, None, None]  # (N, 1, 1, 1)
    n = a.shape[0]
    generator = torch.Generator().manual_seed(0)
    if noisy_tv:
        std = (0.05 + 0.95 * a).expand(n, particles, 1, 1)
        spread = torch.zeros(members, 1, 1, 1, 1)
    else:
        std = torch.full((n, particles, 1, 1), 0.1)
        spread = torch.linspace(-1, 1, members).reshape(members, 1, 1, 1, 1)
    member_mean = spread * a[None]  # (M, N, 1, 1, 1)
    member_std = std[:, :1][None].expand(members, -1, -1, -1, -1)
    member = torch.arange(particles) % members
    mean = member_mean[member, :, 0].permute(1, 0, 2, 3)  # (N, P, H, D): particle p -> member
    outcome = mean + std * torch.randn(mean.shape, generator=generator)
    if noisy_tv:
        log_pref = torch.distributions.Normal(0.0, 1.0).log_prob(outcome).sum(-1)
    else:
        log_pref = torch.zeros(outcome.shape[:-1])
    return Rollout(
        log_preference=log_pref,
        obs_entropy=efe.gaussian_entropy(std),
        member_mean=member_mean,
        member_std=member_std,
    )


def plan_sign(objective, noisy_tv=False, epistemic="mixture"):
    cfg = ObjectiveConfig(objective=objective, epistemic=epistemic)
    score = Objective(cfg)
    planner = SamplingPlanner(PlannerConfig(horizon=1, candidates=200, iterations=3, elites=20), 1)
    torch.manual_seed(0)
    plan = planner.plan(lambda actions: score.cost(toy_rollout(actions, noisy_tv)))
    return float(plan.mean[0, 0])


def test_with_flat_preferences_the_planner_prefers_the_informative_action():
    for estimator in ("mixture", "disagreement"):
        assert plan_sign("efe", epistemic=estimator) > 0.8
        assert plan_sign("feef", epistemic=estimator) > 0.8


def test_efe_avoids_a_noisy_tv_that_feef_is_drawn_to():
    # E log N(o; 0, 1) is higher for the calm outcome, and the TV carries no information,
    # so G prefers calm; FEEF subtracts the TV's large ambiguity and prefers it.
    # (Every a <= 0 is equally calm, so G's plan ends anywhere below zero.)
    assert plan_sign("efe", noisy_tv=True) < -0.2
    assert plan_sign("preference", noisy_tv=True) < -0.2
    assert plan_sign("feef", noisy_tv=True) > 0.8


def test_switching_the_objective_changes_only_the_score():
    torch.manual_seed(0)
    rollout = toy_rollout(torch.rand(6, 1, 1) * 2 - 1)
    rollout = Rollout(
        **{**rollout.__dict__, "reward": torch.randn(6, 200, 1), "cont": torch.ones(6, 200, 1)}
    )
    cost = {
        o: Objective(ObjectiveConfig(objective=o, epistemic="mixture")).per_step(rollout)
        for o in ("reward", "preference", "efe", "feef")
    }
    pragmatic = efe.pragmatic_value(rollout.log_preference)
    gain = efe.mixture_information_gain(rollout.member_mean, rollout.member_std)
    assert torch.allclose(cost["reward"], -rollout.reward.mean(1))
    assert torch.allclose(cost["preference"], -pragmatic)
    assert torch.allclose(cost["efe"], cost["preference"] - gain)
    assert torch.allclose(cost["feef"], cost["efe"] - efe.ambiguity(rollout.obs_entropy))


def test_the_action_prior_adds_a_control_cost_to_the_preference_objectives_only():
    torch.manual_seed(0)
    actions = torch.tensor([[0.0, 0.0], [1.0, -2.0]])[:, None, None]  # (N=2, 1, H=1, A=2)
    rollout = dataclasses.replace(
        toy_rollout(torch.zeros(2, 1, 1)),
        reward=torch.randn(2, 200, 1),
        cont=torch.ones(2, 200, 1),
        actions=actions,
    )
    # log N(a; 0, 0.5²) up to its constant: -(1 + 4) / (2 * 0.25) = -10 for the second.
    assert efe.action_log_prior(actions, 0.5).flatten().tolist() == [0.0, -10.0]
    for objective in ("reward", "preference", "efe", "feef"):
        flat = Objective(ObjectiveConfig(objective=objective)).per_step(rollout)
        cfg = ObjectiveConfig(objective=objective, action_prior_std=0.5)
        cost = Objective(cfg).per_step(rollout)
        extra = torch.zeros(2, 1) if objective == "reward" else torch.tensor([[0.0], [10.0]])
        assert torch.allclose(cost - flat, extra), objective
    terms = Objective(ObjectiveConfig(action_prior_std=0.5)).terms(rollout)
    assert terms["efe/action_prior"].tolist() == [0.0, -10.0]
    with pytest.raises(ValueError, match="needs the rollout's actions"):
        Objective(cfg).cost(dataclasses.replace(rollout, actions=None))
    with pytest.raises(ValueError, match="invalid action_prior_std=-1"):
        ObjectiveConfig(action_prior_std=-1)


def test_a_predicted_end_counts_as_the_worst_outcome_when_ending_is_failure():
    # Candidate 0 stays up at log p̃ = -5 a step. Candidate 1 falls at step 0 (log p̃ = -10,
    # continuation 0) and the model then imagines it back at the preferred state (0).
    log_preference = torch.tensor([[-5.0, -5.0, -5.0], [-10.0, 0.0, 0.0]])[:, None]
    cont = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])[:, None]
    members = torch.zeros(2, 2, 1, 3, 1)
    members[1, 1] = 1.0  # the members disagree only after the fall
    rollout = Rollout(
        log_preference=log_preference,
        obs_entropy=torch.ones(2, 1, 3),
        cont=cont,
        reward=torch.ones(2, 1, 3),
        member_mean=members,
        member_std=torch.full((2, 2, 1, 3, 1), 0.1),
    )
    cost = {
        end: Objective(ObjectiveConfig(objective="preference", end_is_failure=end)).cost(rollout)
        for end in (False, True)
    }
    assert cost[False].tolist() == [15.0, 10.0]  # blind to the end, it prefers the fall
    assert cost[True].tolist() == [15.0, 30.0]  # every step from the fall scores the worst
    efe_ended = Objective(ObjectiveConfig(objective="efe", end_is_failure=True))
    assert torch.allclose(
        efe_ended.per_step(rollout), -efe_ended.with_end(rollout)[0].log_preference[:, 0]
    )
    # Nothing is observed or learned after the end: no ambiguity, no information gain.
    feef_ended = Objective(ObjectiveConfig(objective="feef", end_is_failure=True))
    assert torch.allclose(feef_ended.per_step(rollout)[1], torch.full((3,), 10.0))
    # The reward objective weights rewards by the same probability already: unchanged.
    reward = [
        Objective(ObjectiveConfig(objective="reward", end_is_failure=e)) for e in (False, True)
    ]
    assert torch.equal(reward[0].cost(rollout), reward[1].cost(rollout))
    assert not reward[1].needs().cont and efe_ended.needs().cont
    with pytest.raises(ValueError, match="continuations"):
        efe_ended.cost(Rollout(log_preference, torch.ones(2, 1, 3)))


def test_only_objectives_that_score_ambiguity_ask_for_the_observation_entropy():
    """The entropy is a reduction over every imagined row and dimension: imagination skips
    it unless the cost (feef, the k-NN estimator) or the logged terms use it."""
    asks = {
        (objective, est): Objective(ObjectiveConfig(objective=objective, epistemic=est))
        .needs()
        .entropy
        for objective in ("preference", "efe", "feef", "reward")
        for est in ("disagreement", "knn")
    }
    assert {key for key, value in asks.items() if value} == {
        ("feef", "disagreement"),
        ("feef", "knn"),
        ("efe", "knn"),
    }
    feef = Objective(ObjectiveConfig(objective="feef"))
    assert feef.logging_needs().entropy and Objective(ObjectiveConfig()).logging_needs().entropy
    lean = Rollout(
        log_preference=torch.zeros(2, 2, 3),
        member_mean=torch.zeros(2, 2, 2, 3, 1),
        member_std=torch.ones(2, 2, 2, 3, 1),
    )
    assert Objective(ObjectiveConfig(objective="efe")).cost(lean).shape == (2,)
    with pytest.raises(ValueError, match="observation entropy"):
        feef.cost(lean)
