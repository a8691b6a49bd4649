"""The score of imagined futures: one function per objective, everything else shared.

``Objective.per_step`` turns a :class:`~agents.active_inference.imagination.Rollout` into
a cost per candidate and step ``(N, H)`` that planners and the amortised policy minimise:

| objective | cost per step |
| --- | --- |
| ``reward`` | ``-E[r̂]`` (weighted by the probability that the episode is still going) |
| ``preference`` | ``-E[log p̃(o)]`` (pragmatic value only) |
| ``efe`` | ``G = -(E[log p̃(o)] + scale * epistemic)`` |
| ``feef`` | ``-(E[log p̃(o)] + E H[p(o|s)] + scale * epistemic)`` |

``epistemic`` is one of the estimators of :mod:`agents.active_inference.efe`, chosen by
``epistemic``; ``scale`` (``epistemic_scale``) weighs it against the pragmatic value.

With ``end_is_failure`` (tasks whose episodes end only by failing, e.g. a fallen pole) the
preference-based objectives read the world model's continuation probability too: from the
step an episode is predicted to end, each step's log-preference is the worst one imagined
in the same call, and nothing more is observed or learned (ambiguity and epistemic value
weighted by the probability the episode goes on). Without it a planner scores imagined
states past the fall, where the model only extrapolates, as if the episode went on.

With ``action_prior_std`` σ > 0 the preference-based objectives prefer small actions too:
each step's log-preference gains ``log p(a) = -|a|² / (2σ²)`` (a Gaussian prior over
actions, up to its constant), the active-inference counterpart of a reward's control cost.
The reward objective takes the task's reward as it is.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from agents.active_inference import efe
from agents.active_inference.imagination import Needs, Rollout
from generative.base import check, check_choice

OBJECTIVES = ("reward", "preference", "efe", "feef")
ESTIMATORS = ("disagreement", "mixture", "knn", "latent")
# Estimators that need every ensemble member's prediction.
MEMBER_ESTIMATORS = ("disagreement", "mixture")


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """What the planner minimises."""

    objective: str = "preference"
    """reward | preference | efe | feef (see the module docstring)."""
    epistemic: str = "mixture"
    """disagreement | mixture | knn | latent: the information-gain estimator of efe and feef."""
    epistemic_scale: float = 1.0
    """Weight of the epistemic value against the pragmatic value (1 is the plain EFE)."""
    knn_k: int = 3
    """Neighbour index of the k-NN entropy estimate."""
    discount: float = 1.0
    """Discount of future steps in the plan's total."""
    end_is_failure: bool = False
    """Count a predicted end of the episode as the worst outcome imagined (see the module
    docstring); the reward objective already weights rewards by the same probability."""
    action_prior_std: float = 0.0
    """σ of the Gaussian prior over each action dimension that the preference-based
    objectives add to the log-preference (see the module docstring); 0: flat."""

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("epistemic", self.epistemic, ESTIMATORS)
        check(self.epistemic_scale >= 0, "epistemic_scale", self.epistemic_scale, ">= 0")
        check(self.knn_k >= 1, "knn_k", self.knn_k, ">= 1")
        check(0 < self.discount <= 1, "discount", self.discount, "in (0, 1]")
        check(self.action_prior_std >= 0, "action_prior_std", self.action_prior_std, ">= 0")

    @property
    def uses_epistemic(self) -> bool:
        return self.objective in ("efe", "feef")

    @property
    def scores_end(self) -> bool:
        """Whether a preference-based objective treats a predicted end as failure."""
        return self.end_is_failure and self.objective != "reward"


class Objective:
    """Scores rollouts for one :class:`ObjectiveConfig`."""

    def __init__(self, cfg: ObjectiveConfig):
        self.cfg = cfg

    def needs(self) -> Needs:
        """What imagination must compute for this objective's cost."""
        cfg = self.cfg
        est = cfg.epistemic if cfg.uses_epistemic else None
        return Needs(
            obs=False,
            reward=cfg.objective == "reward",
            cont=cfg.scores_end,
            members=est in MEMBER_ESTIMATORS,
            latent_kl=est == "latent",
            outcomes=est == "knn",
            entropy=cfg.objective == "feef" or est == "knn",
        )

    def epistemic(self, rollout: Rollout) -> Tensor:
        """The configured information-gain estimate ``(N, H)``."""
        est = self.cfg.epistemic
        missing = {
            "disagreement": rollout.member_mean is None,
            "mixture": rollout.member_mean is None or rollout.member_std is None,
            "knn": rollout.outcomes is None or rollout.obs_entropy is None,
            "latent": rollout.latent_kl is None,
        }[est]
        if missing:
            raise ValueError(f"the rollout lacks what epistemic={est!r} needs")
        if est == "disagreement":
            return efe.ensemble_disagreement(rollout.member_mean)
        if est == "mixture":
            return efe.mixture_information_gain(rollout.member_mean, rollout.member_std)
        if est == "knn":
            return efe.knn_information_gain(rollout.outcomes, rollout.obs_entropy, self.cfg.knn_k)
        return efe.latent_information_gain(rollout.latent_kl)

    def with_action_prior(self, rollout: Rollout) -> Rollout:
        """``rollout`` with the action prior's ``log p(a)`` added to each step's
        log-preference (``action_prior_std > 0`` and a preference-based objective)."""
        std = self.cfg.action_prior_std
        if std == 0 or self.cfg.objective == "reward":
            return rollout
        if rollout.actions is None:
            raise ValueError("action_prior_std needs the rollout's actions")
        log_prior = efe.action_log_prior(rollout.actions, std)
        return dataclasses.replace(rollout, log_preference=rollout.log_preference + log_prior)

    def with_end(self, rollout: Rollout) -> tuple[Rollout, Tensor | None]:
        """``rollout`` with a predicted end scored as failure (``end_is_failure``), and the
        probability ``(N, H)`` that each step is still part of the episode (``None``
        without it). After the end the log-preference is the lowest one in ``rollout``,
        and the observation entropy is zero (nothing more is observed)."""
        if not self.cfg.scores_end:
            return rollout, None
        if rollout.cont is None:
            raise ValueError("end_is_failure needs predicted continuations")
        going = torch.cumprod(rollout.cont, -1)
        worst = rollout.log_preference.detach().min()
        log_preference = going * rollout.log_preference + (1 - going) * worst
        entropy = None if rollout.obs_entropy is None else going * rollout.obs_entropy
        ended = dataclasses.replace(rollout, log_preference=log_preference, obs_entropy=entropy)
        return ended, going.mean(1)

    def still_going(self, rollout: Rollout) -> Tensor | None:
        """The probability ``(N, P, H)`` that the episode is still going after each step, for
        the objective whose costs stop at a predicted end (reward: what a value bootstrapped
        there is worth); ``None`` for the preference-based ones, which score the steps after
        an end themselves (``end_is_failure``) or ignore it."""
        if self.cfg.objective != "reward" or rollout.cont is None:
            return None
        return torch.cumprod(rollout.cont, -1)

    def per_step(self, rollout: Rollout) -> Tensor:
        """The cost of each candidate at each step, ``(N, H)``."""
        cfg = self.cfg
        if cfg.objective == "reward":
            return -efe.pragmatic_value(alive_weighted_reward(rollout))
        scored, going = self.with_end(self.with_action_prior(rollout))
        pragmatic = efe.pragmatic_value(scored.log_preference)
        if cfg.objective == "preference":
            return -pragmatic
        epistemic = self.epistemic(rollout)
        if going is not None:
            epistemic = going * epistemic
        if cfg.objective == "efe":
            return efe.expected_free_energy(pragmatic, epistemic, cfg.epistemic_scale)
        return efe.free_energy_of_expected_future(
            pragmatic, efe.ambiguity(_entropy(scored)), epistemic, cfg.epistemic_scale
        )

    def cost(self, rollout: Rollout) -> Tensor:
        """The discounted total cost of each candidate, ``(N,)``."""
        return efe.discounted_sum(self.per_step(rollout), self.cfg.discount)

    def terms(self, rollout: Rollout) -> dict[str, Tensor]:
        """Every term of the candidates' (discounted) totals, ``(N,)`` each, for logging;
        the rollout must hold what the configured estimator needs.

        ``efe/risk`` uses the outcome entropy ``ambiguity + information gain`` (in nats:
        the moment-matched mixture bound stands in for the disagreement, a variance), so
        that ``risk + ambiguity = G`` of the efe objective whenever the estimator is in nats.
        """
        total = lambda x: efe.discounted_sum(x, self.cfg.discount)  # noqa: E731
        scored, going = self.with_end(self.with_action_prior(rollout))
        pragmatic = efe.pragmatic_value(scored.log_preference)
        amb = efe.ambiguity(_entropy(scored))
        epistemic = self.epistemic(rollout)
        info_gain = epistemic
        if self.cfg.epistemic == "disagreement":
            info_gain = efe.mixture_information_gain(rollout.member_mean, rollout.member_std)
        if going is not None:
            epistemic, info_gain = going * epistemic, going * info_gain
        out = {
            "efe/pragmatic": total(pragmatic),
            "efe/epistemic": total(epistemic),
            "efe/ambiguity": total(amb),
            "efe/risk": total(efe.risk(pragmatic, amb + info_gain)),
            "efe/cost": self.cost(rollout),
        }
        if self.cfg.action_prior_std > 0 and rollout.actions is not None:
            out["efe/action_prior"] = total(
                efe.action_log_prior(rollout.actions, self.cfg.action_prior_std).mean(1)
            )
        if rollout.reward is not None:
            out["efe/reward"] = total(efe.pragmatic_value(alive_weighted_reward(rollout)))
        return out

    def logging_needs(self) -> Needs:
        """What :meth:`terms` needs: the cost's, the estimator's, observations and rewards."""
        est = self.cfg.epistemic
        return self.needs().union(
            Needs(
                obs=True,
                reward=True,
                members=est in MEMBER_ESTIMATORS,
                latent_kl=est == "latent",
                outcomes=est == "knn",
                entropy=True,
            )
        )


def _entropy(rollout: Rollout) -> Tensor:
    if rollout.obs_entropy is None:
        raise ValueError(
            "the rollout lacks the observation entropy: imagine with Needs(entropy=True)"
        )
    return rollout.obs_entropy


def alive_weighted_reward(rollout: Rollout) -> Tensor:
    """Rewards ``(N, P, H)`` times the probability that the episode had not ended before
    them, ``prod_{τ < t} c_τ``."""
    if rollout.reward is None or rollout.cont is None:
        raise ValueError("the reward objective needs predicted rewards and continuations")
    alive = torch.cumprod(
        torch.cat([torch.ones_like(rollout.cont[..., :1]), rollout.cont[..., :-1]], -1), -1
    )
    return rollout.reward * alive
