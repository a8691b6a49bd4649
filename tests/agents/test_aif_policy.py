"""The amortised policy: λ-returns by hand, actions over the env's whole range, the critic."""

import torch

from agents.active_inference.imagination import Imagined, Imaginer, Needs, Rollout
from agents.active_inference.objective import Objective, ObjectiveConfig
from agents.active_inference.policy import (
    ActorCritic,
    PolicyConfig,
    imagined_returns,
    lambda_returns,
    symexp,
    symlog,
)
from world_models.state import LatentState


def test_lambda_returns_are_monte_carlo_at_one_and_td_zero_at_zero():
    reward = torch.tensor([[1.0, 2.0, 3.0]])
    value = torch.tensor([[10.0, 20.0, 30.0, 40.0]])  # V(s_0..s_3)
    discount = torch.full((1, 3), 0.5)
    monte_carlo = lambda_returns(reward, value, discount, 1.0)
    # R_2 = 3 + 0.5 * 40, R_1 = 2 + 0.5 * R_2, R_0 = 1 + 0.5 * R_1
    assert torch.allclose(monte_carlo, torch.tensor([[7.75, 13.5, 23.0]]))
    td_zero = lambda_returns(reward, value, discount, 0.0)
    assert torch.allclose(td_zero, reward + 0.5 * value[:, 1:])
    # A predicted end (γ_t = 0) cuts the return there.
    ended = lambda_returns(reward, value, torch.tensor([[0.5, 0.0, 0.5]]), 1.0)
    assert torch.allclose(ended[:, :2], torch.tensor([[2.0, 2.0]]))


def test_actions_cover_the_env_bounds_not_just_minus_one_to_one():
    torch.manual_seed(0)
    policy = ActorCritic(PolicyConfig(hidden=(8,)), feature_size=4, action_dim=1, low=-3, high=3)
    features = torch.zeros(5, 4)
    with torch.no_grad():
        policy.actor[-1].bias.copy_(torch.tensor([10.0, 0.0]))  # a saturated mean
        assert torch.allclose(policy.act(features, explore=False), torch.full((5, 1), 3.0))
        assert (policy.act(features).abs() <= 3).all()
        shifted = ActorCritic(PolicyConfig(hidden=(8,)), 4, 1, low=0.0, high=2.0)
        assert 0 <= float(shifted.act(features, explore=False)[0]) <= 2


def test_the_critic_speaks_symlog_and_its_slow_copy_starts_equal():
    x = torch.tensor([-24000.0, -241.0, -0.5, 0.0, 3.0])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert symlog(torch.tensor(-24000.0)) > -11  # a large cost is a small regression target
    policy = ActorCritic(PolicyConfig(hidden=(8,)), feature_size=4, action_dim=1)
    features = torch.randn(3, 4)
    assert torch.equal(policy.value(features), policy.value(features, slow=True))
    assert not any(p.requires_grad for p in policy.slow_critic.parameters())
    assert "slow_critic.0.weight" in policy.state_dict()  # saved and resumed with the rest
    # Values stay within the returns the critic was trained on (none yet: unbounded).
    with torch.no_grad():
        policy.critic[-1].bias.fill_(30.0)  # an extrapolation: symexp(30) ~ 1e13
        assert policy.value(features).min() > 1e12
        policy.value_range.copy_(torch.tensor([-2.0, 3.0]))
        assert torch.allclose(policy.value(features), symexp(torch.tensor(3.0)))


def test_an_imagined_fall_costs_the_policy_more_than_staying_up():
    # Two rollouts of 4 steps, each step costing 2 (log-preference -2) while the pole is
    # up; the second falls at its first step (continuation 0 from there), and each step
    # from the fall on scores as the worst imagined, -5.
    cont = torch.tensor([[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0, 0.0]]])
    log_pref = torch.tensor([[[-2.0, -2.0, -2.0, -2.0]], [[-2.0, -5.0, -5.0, -5.0]]])
    rollout = Rollout(log_preference=log_pref, cont=cont)
    value = torch.zeros(2, 5)
    objective = Objective(ObjectiveConfig(objective="preference", end_is_failure=True))
    returns, weights = imagined_returns(objective, rollout, value, 1.0, 1.0)
    assert torch.allclose(returns[:, 0], torch.tensor([-8.0, -20.0]))
    # (Discounting by the continuation too would have scored the fall -5: better.)
    assert torch.equal(weights, torch.ones(2, 4))  # what follows a fall is worth learning
    # The reward objective: rewards and bootstrapped values count while the episode goes on.
    rollout = Rollout(log_preference=log_pref, reward=torch.ones(2, 1, 4), cont=cont)
    value = torch.full((2, 5), 100.0)
    returns, weights = imagined_returns(
        Objective(ObjectiveConfig("reward")), rollout, value, 1.0, 1.0
    )
    assert torch.allclose(returns[:, 0], torch.tensor([104.0, 1.0]))
    assert torch.equal(weights[1], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_the_actors_entropy_is_the_actions_and_falls_as_the_tanh_saturates():
    policy = ActorCritic(PolicyConfig(hidden=(8,)), feature_size=4, action_dim=1, low=-3, high=3)
    u = torch.linspace(-6, 6, 13, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(policy.squash(u).sum(), u)
    assert torch.allclose(policy.log_squash_slope(u), slope.log())
    # The same Gaussian width, its mean pushed toward the bound: the action's entropy falls.
    entropies = []
    for mean in (0.0, 2.0, 4.0):
        with torch.no_grad():
            policy.actor[-1].weight.zero_()
            policy.actor[-1].bias.copy_(torch.tensor([mean, 0.0]))
            torch.manual_seed(0)
            score = lambda step: step.obs.sum(-1)  # noqa: E731
            _, _, entropy, _ = policy.imagine(_Still(), _start(64), score, _NEEDS)
        entropies.append(float(entropy.mean()))
    assert entropies[0] > entropies[1] > entropies[2]


class _Still(Imaginer):
    """A world where nothing moves: the state stays, its features are the state."""

    def step(self, state, action, needs):
        return Imagined(state, state.stoch)

    def features(self, state):
        return state.stoch


def _start(rows):
    return LatentState(torch.zeros(rows, 1), torch.zeros(rows, 4))


_NEEDS = Needs()


class _Detached(Imaginer):
    """The action moves the state, but no gradient passes through the move (a model whose
    returns are too rugged in the actions to follow their gradient, at its extreme)."""

    def step(self, state, action, needs):
        moved = LatentState(state.deter, (state.stoch + action).detach())
        return Imagined(moved, moved.stoch)

    def features(self, state):
        return state.stoch


def test_likelihood_ratios_learn_where_the_model_passes_no_gradient():
    def mean_action(reinforce):
        torch.manual_seed(0)
        cfg = PolicyConfig(hidden=(16,), horizon=1, starts=64, actor_lr=1e-2, critic_lr=1e-2,
                           reinforce=reinforce)  # fmt: skip
        policy = ActorCritic(cfg, feature_size=1, action_dim=1)
        start = LatentState(torch.zeros(64, 1), torch.zeros(64, 1))
        prefer = lambda step: -(step.obs - 0.5).pow(2).sum(-1)  # noqa: E731
        objective = Objective(ObjectiveConfig(objective="preference"))
        for _ in range(150):
            policy.update(_Detached(), start, objective, prefer, _NEEDS)
        with torch.no_grad():
            return float(policy.act(torch.zeros(1, 1), explore=False))

    assert abs(mean_action(0.0)) < 0.1  # the pathwise gradient is zero: nothing learned
    assert abs(mean_action(1.0) - 0.5) < 0.1  # REINFORCE finds the preferred outcome
