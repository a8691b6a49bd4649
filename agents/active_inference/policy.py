"""An amortised policy trained in imagination (Dreamer-style actor-critic) on any objective.

The actor ``π(a | s)`` (a tanh-squashed Gaussian scaled to the action bounds) and the
critic ``V(s)`` read the world model's state features. From start states filtered out of
replayed experience the actor imagines ``H`` steps; each step's cost comes from the same
:class:`~agents.active_inference.objective.Objective` the planners minimise, so the
policy learns the same objective (reward, preference, EFE or FEEF) and acting costs one
network call. With ``r_t = -cost_t`` the λ-return is

    R_t = r_{t+1} + γ ((1 - λ) V(s_{t+1}) + λ R_{t+1}),   R_H = V(s_H).

A predicted end of the episode enters through the objective's costs, as for the planners,
not through the discount (Dreamer's ``γ c_t``; see :func:`imagined_returns`).

The actor maximises it by backpropagating through the (frozen) world model (or, in the
share ``reinforce``, by likelihood ratios: ``(R_t - V(s_t)) ∇ log π(a_t | s_t)``), plus an
entropy bonus (the squashed action's entropy, as SAC's, which a saturated tanh lowers);
the critic regresses on it, and its values are kept within the returns it has regressed
on, as an ensemble's imagined states are kept within the data's range. As in DreamerV3
the critic predicts returns in symlog space (``sign(x) log(1 + |x|)``), so its loss has the
same scale whether a step costs 0.1 or 200, the returns bootstrap from a slow copy of the
critic (an average of its recent weights), and the actor's returns are divided by a running
estimate of their 5-95% spread (at least one), so one learning rate suits every objective.
An earlier version predicted returns in units of that spread, with no slow copy: the two
fed each other, and on inverted-pendulum (preference, costs up to 241 per step) the spread
grew from 1e3 to 1e29 within 500 updates and the actor's weights became NaN.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import Tensor, nn

from agents.active_inference.imagination import Imaginer, LogPreference, Needs, Rollout, stack
from agents.active_inference.objective import Objective
from generative.vae.nets import mlp
from world_models.state import LatentState


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """The actor-critic's sizes and learning settings."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor and the critic."""
    horizon: int = 15
    """Imagined steps per update."""
    discount: float = 0.99
    """γ."""
    lambda_: float = 0.95
    """λ of the λ-return."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic."""
    entropy_scale: float = 1e-3
    """Weight of the actor's entropy bonus (in units of the normalised return): the entropy
    of the action itself, so a saturated tanh costs entropy."""
    min_std: float = 0.05
    """Lower bound on the actor's std (before the tanh)."""
    starts: int = 256
    """Start states per update."""
    grad_clip: float = 100.0
    """Gradient-norm clip of both networks."""
    target_mix: float = 0.02
    """Share of the critic's weights mixed into its slow copy after every update."""
    reinforce: float = 0.0
    """Share of the actor's gradient from likelihood ratios (REINFORCE with the critic as
    baseline) instead of backpropagation through the world model: 0 is Dreamer's pathwise
    gradient, 1 likelihood ratios alone, as DreamerV2/V3 offer for dynamics whose returns
    are too rugged in the actions to be followed by their gradient."""

    def __post_init__(self) -> None:
        checks = (
            ("hidden", all(h >= 1 for h in self.hidden), "positive widths"),
            ("horizon", self.horizon >= 1, ">= 1"),
            ("discount", 0 < self.discount <= 1, "in (0, 1]"),
            ("lambda_", 0 <= self.lambda_ <= 1, "in [0, 1]"),
            ("actor_lr", self.actor_lr > 0, "> 0"),
            ("critic_lr", self.critic_lr > 0, "> 0"),
            ("entropy_scale", self.entropy_scale >= 0, ">= 0"),
            ("min_std", self.min_std > 0, "> 0"),
            ("starts", self.starts >= 1, ">= 1"),
            ("grad_clip", self.grad_clip > 0, "> 0"),
            ("target_mix", 0 < self.target_mix <= 1, "in (0, 1]"),
            ("reinforce", 0 <= self.reinforce <= 1, "in [0, 1]"),
        )
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(
                    f"invalid policy {name}={getattr(self, name)!r}: must be {allowed}"
                )


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def lambda_returns(reward: Tensor, value: Tensor, discount: Tensor, lambda_: float) -> Tensor:
    """λ-returns ``(B, H)`` from rewards ``r_1..r_H`` ``(B, H)``, values ``V(s_0..s_H)``
    ``(B, H + 1)`` and discounts ``γ_1..γ_H`` ``(B, H)`` (see the module docstring)."""
    returns = []
    last = value[:, -1]
    for t in reversed(range(reward.shape[1])):
        last = reward[:, t] + discount[:, t] * ((1 - lambda_) * value[:, t + 1] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1], 1)


def imagined_returns(
    objective: Objective, rollout: Rollout, value: Tensor, discount: float, lambda_: float
) -> tuple[Tensor, Tensor]:
    """λ-returns ``(B, H)`` of a policy's rollout ``(B, 1, H)`` under ``objective``, with
    values ``V(s_0..s_H)`` ``(B, H + 1)``, and the weight ``(B, H)`` of each start state:
    the probability that the episode is still going there where the objective stops
    counting at an end (:meth:`Objective.still_going`); one otherwise.

    The objective's costs already say what a predicted end means (the reward objective
    weights rewards by the probability the episode goes on, and here values too; a
    preference with ``end_is_failure`` scores the steps after it as the worst), so the
    returns discount by ``γ`` alone: discounting by the continuation as well makes an end
    stop the costs, and with costs >= 0 an early end looks good.
    """
    reward = -objective.per_step(rollout)
    weights = torch.ones_like(reward)
    going = objective.still_going(rollout)
    if going is not None:
        going = going[:, 0]
        alive = torch.cat([torch.ones_like(going[:, :1]), going], 1)  # s_0 .. s_H
        value = value * alive  # states past the end are worth nothing ...
        weights = alive[:, :-1].detach()  # ... and teach the critic nothing
    returns = lambda_returns(reward, value, torch.full_like(reward, discount), lambda_)
    return returns, weights


class ActorCritic(nn.Module):
    """Actor and critic over state features ``(B, F)``, actions of size ``action_dim`` in
    ``[low, high]`` (the env's bounds, which the world model was trained on)."""

    def __init__(
        self,
        cfg: PolicyConfig,
        feature_size: int,
        action_dim: int,
        low: float = -1.0,
        high: float = 1.0,
    ):
        super().__init__()
        self.cfg = cfg
        self.mid, self.half = (high + low) / 2, (high - low) / 2
        self.actor = mlp(feature_size, cfg.hidden, 2 * action_dim)
        self.critic = mlp(feature_size, cfg.hidden, 1)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("return_scale", torch.ones(()))
        # The lowest and highest symlog return the critic has regressed on (none yet).
        self.register_buffer("value_range", torch.tensor([math.inf, -math.inf]))
        self.optimizers = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr),
        }

    def distribution(self, features: Tensor) -> torch.distributions.Normal:
        """The pre-tanh Gaussian ``(B, A)``."""
        mean, std = self.actor(features).chunk(2, -1)
        std = torch.nn.functional.softplus(std) + self.cfg.min_std
        return torch.distributions.Normal(mean, std)

    def act(self, features: Tensor, explore: bool = True) -> Tensor:
        """Actions ``(B, A)`` in ``[low, high]``: a reparameterised draw, or the mode."""
        dist = self.distribution(features)
        return self.squash(dist.rsample() if explore else dist.mean)

    def squash(self, u: Tensor) -> Tensor:
        return self.mid + self.half * torch.tanh(u)

    def log_squash_slope(self, u: Tensor) -> Tensor:
        """``log |da/du|`` of :meth:`squash`, elementwise: with it, ``H[u] + E log|da/du|``
        is the entropy of the action itself, which falls as the tanh saturates (the Gaussian's
        own entropy does not notice a mean pushed to the bound)."""
        log_tanh_slope = 2 * (math.log(2) - u - nn.functional.softplus(-2 * u))  # log(1-tanh²)
        return math.log(self.half) + log_tanh_slope

    def value(self, features: Tensor, slow: bool = False) -> Tensor:
        """``V(s)`` ``(B, ...)`` in the objective's units (the critic works in symlog).

        Bounded by the returns the critic has been trained on: a value read at a state
        unlike any it has seen is an extrapolation, and symexp turns a modest one into an
        enormous number that the next returns would bootstrap from (with a 5-step horizon
        on inverted-pendulum the imagined returns reached -5e15 within 750 decisions)."""
        prediction = (self.slow_critic if slow else self.critic)(features).squeeze(-1)
        low, high = self.value_range.unbind()
        bounded = torch.where(low <= high, prediction.clamp(low, high), prediction)
        return symexp(bounded)

    def imagine(
        self,
        imaginer: Imaginer,
        start: LatentState,
        log_preference: LogPreference,
        needs: Needs,
        horizon: int | None = None,
        explore: bool = True,
    ) -> tuple[Rollout, Tensor, Tensor, Tensor]:
        """Imagine ``horizon`` steps from ``start`` ``(B, .)`` with the actor choosing.

        Returns the rollout ``(B, 1, H)``, the features ``(B, H + 1, F)`` of the states
        visited (start included), the actor's entropy ``(B, H)`` and the log-likelihood
        ``(B, H)`` of each action drawn, as a function of the actor's weights only.
        """
        horizon = horizon or self.cfg.horizon
        state = start
        features = [imaginer.features(state)]
        steps, entropy, log_prob, actions = [], [], [], []
        for _ in range(horizon):
            dist = self.distribution(features[-1].detach())
            u = dist.rsample() if explore else dist.mean
            action = self.squash(u)
            entropy.append((dist.entropy() + self.log_squash_slope(u)).sum(-1))
            log_prob.append(dist.log_prob(u.detach()).sum(-1))
            actions.append(action)
            step = imaginer.step(state, action, needs)
            state = step.state
            features.append(imaginer.features(state))
            steps.append((log_preference(step), step))
        rollout = stack(steps, start.shape[0], needs.outcomes)
        rollout = dataclasses.replace(rollout, actions=torch.stack(actions, 1)[:, None])
        return rollout, torch.stack(features, 1), torch.stack(entropy, 1), torch.stack(log_prob, 1)

    def propose(self, imaginer: Imaginer, start: LatentState, count: int, horizon: int) -> Tensor:
        """``count`` action sequences ``(K, H, A)`` for a planner to score: the actor's
        draws along ``count`` futures it imagines from ``start`` ``(1, .)`` (with the
        ensemble, rows are split among the members, so the members propose alike)."""
        state = start.map(lambda t: t.expand(count, *t.shape[1:]))
        actions = []
        for _ in range(horizon):
            action = self.act(imaginer.features(state), explore=True)
            actions.append(action)
            state = imaginer.step(state, action, Needs(obs=False)).state
        return torch.stack(actions, 1).float()

    def update(
        self,
        imaginer: Imaginer,
        start: LatentState,
        objective: Objective,
        log_preference: LogPreference,
        needs: Needs,
    ) -> dict[str, float]:
        """One actor and one critic step from start states ``(B, .)``; returns metrics.

        Gradients reach only the actor's and the critic's weights (``backward(inputs=...)``):
        the world model and the preference stay as they are."""
        cfg = self.cfg
        rollout, features, entropy, log_prob = self.imagine(
            imaginer, start.detach(), log_preference, needs
        )
        # The slow critic has no trainable weights, but the actor's gradient flows through
        # the bootstrapped values into the imagined states (and so into its actions).
        value = self.value(features, slow=True)
        returns, weights = imagined_returns(objective, rollout, value, cfg.discount, cfg.lambda_)
        with torch.no_grad():
            flat = returns.flatten()
            spread = torch.quantile(flat, 0.95) - torch.quantile(flat, 0.05)
            self.return_scale.mul_(0.99).add_(0.01 * spread)
        scale = self.return_scale.clamp_min(1.0)
        advantage = (returns - value[:, :-1]).detach()
        # With likelihood ratios alone, nothing is backpropagated through the world model.
        pathwise = returns if cfg.reinforce < 1 else returns.detach()
        objective_term = (1 - cfg.reinforce) * pathwise + cfg.reinforce * advantage * log_prob
        actor_loss = -(weights * (objective_term / scale + cfg.entropy_scale * entropy)).mean()
        actor_params = list(self.actor.parameters())
        self.optimizers["actor"].zero_grad(set_to_none=True)
        actor_loss.backward(inputs=actor_params)
        nn.utils.clip_grad_norm_(actor_params, cfg.grad_clip)
        self.optimizers["actor"].step()

        critic_params = list(self.critic.parameters())
        prediction = self.critic(features[:, :-1].detach()).squeeze(-1)
        target = symlog(returns.detach())
        critic_loss = (weights * (prediction - target).pow(2)).mean()
        self.value_range[0] = torch.minimum(self.value_range[0], target.min())
        self.value_range[1] = torch.maximum(self.value_range[1], target.max())
        self.optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.backward(inputs=critic_params)
        nn.utils.clip_grad_norm_(critic_params, cfg.grad_clip)
        self.optimizers["critic"].step()
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), critic_params, strict=True):
                slow.lerp_(fast, cfg.target_mix)
        return {
            "losses/actor": float(actor_loss.detach()),
            "losses/critic": float(critic_loss.detach()),
            "policy/imagined_return": float(returns.mean().detach()),
            "policy/entropy": float(entropy.mean().detach()),
        }

    def full_state_dict(self) -> dict:
        """Weights, the return scale and both optimisers."""
        return {
            "module": self.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
        }

    def load_full_state_dict(self, state: dict) -> None:
        self.load_state_dict(state["module"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
