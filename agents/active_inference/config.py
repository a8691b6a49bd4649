"""The active-inference agent's settings: :class:`Config` (validated before any work starts)
and ``TUNED``, the per-task overrides the benchmark tasks run with."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from agents.active_inference.objective import (
    ESTIMATORS,
    MEMBER_ESTIMATORS,
    OBJECTIVES,
    ObjectiveConfig,
)
from agents.active_inference.planner import PlannerConfig
from agents.active_inference.policy import PolicyConfig
from agents.active_inference.preferences import GOAL_SOURCES, PIXEL_LIKELIHOODS, SOURCES
from generative.base import check as _check
from generative.base import check_choice as _check_choice
from world_models.base import PRECISIONS

PLANNERS = ("cem", "mppi", "policy")
OBS = ("state", "pixels")
WORLD_MODELS = ("auto", "ensemble", "rssm")
MODEL_SIZES = ("default", "smoke")


@dataclasses.dataclass(frozen=True)
class Config:
    """An active-inference agent (defaults: PETS-style ensemble + CEM for state tasks)."""

    task: str = "pendulum"
    """Registered task (filled by train-agent from --env)."""
    obs: str = "state"
    """state | pixels (filled by train-agent)."""
    objective: str = "preference"
    """reward | preference | efe | feef (filled by train-agent)."""
    planner: str = "cem"
    """cem | mppi | policy (the amortised actor-critic) (filled by train-agent)."""
    world_model: str = "auto"
    """auto | ensemble | rssm; auto: ensemble for state, rssm for pixels."""
    model_size: str = "default"
    """default | smoke (the world model's SMOKE sizes)."""
    model: tuple[str, ...] = ()
    """World-model Config overrides as key=value (values read as YAML), e.g. hidden=200."""

    horizon: int = 15
    """Planning horizon H in agent steps."""
    candidates: int = 400
    """Candidate action sequences per planning iteration."""
    iterations: int = 5
    """Planner iterations per action."""
    elites: int = 40
    """CEM elites."""
    keep_elites: bool = False
    """CEM: carry each iteration's elites into the next iteration's candidates (iCEM; see
    ``PlannerConfig.keep_elites`` for why it is off)."""
    noise_beta: float = 0.0
    """Temporal colour of the planner's sampling noise, power ~ 1 / f^beta along the horizon
    (0: white, as PETS; 2: smooth sequences, as iCEM; see ``PlannerConfig.noise_beta``)."""
    temperature: float = 0.5
    """MPPI temperature, in units of the costs' spread."""
    momentum: float = 0.1
    """Share of the previous search distribution kept at each planner iteration."""
    init_std: float = 0.5
    """Initial std of the planner's action distribution."""
    min_std: float = 0.05
    """Floor on the planner's action std."""
    policy_proposals: int = 0
    """cem | mppi: action sequences the amortised policy (``policy``) proposes per plan,
    imagined from the current state and scored in every planner iteration beside the draws
    (TD-MPC's policy-guided planning); > 0 trains the policy alongside the world model."""
    particles: int = 5
    """Imagined futures per candidate; with the ensemble and P = M, member p propagates
    particle p of every candidate, so every candidate is scored under every member (with
    P = 1 each candidate meets one member, and the planner favours whichever member is
    most optimistic: on inverted-pendulum it then never learned to balance)."""
    propagation_noise: bool = True
    """Sample the ensemble's predicted noise along imagined trajectories (PETS TS1)."""
    discount: float = 1.0
    """Discount over the planning horizon."""
    end_is_failure: bool = False
    """Preference-based objectives: score a predicted end of the episode (the world model's
    continuation head) as the worst outcome imagined, for tasks whose episodes end only by
    failing. Off by default: on inverted-pendulum it rescued a trained agent's episode
    starts, but trained with it from scratch the agent did worse (README)."""
    action_prior_std: float = 0.0
    """Preference-based objectives: σ of a Gaussian prior preference over each action
    dimension (in the env's units), ``log p(a) = -|a|² / (2σ²)`` added to every imagined
    step's log-preference, the counterpart of a reward's control cost; 0: flat."""
    precision: str = "auto"
    """auto | float32 | bfloat16: the number format of the planner's imagined rollouts (the
    world model trains in float32); auto: bfloat16 where the hardware multiplies it natively
    (CPUs with AVX512-BF16 or AMX, CUDA GPUs from Ampere on), which halves a CPU plan's
    matrix products."""

    epistemic: str = "auto"
    """auto | disagreement | mixture | knn | latent: the information-gain estimator of efe
    and feef (auto: mixture for the ensemble, latent for the RSSM; latent needs the RSSM's
    stoch_prior=gaussian, knn works with every prior)."""
    epistemic_scale: float = 1.0
    """Weight of the epistemic value against the pragmatic value: G = -(pragmatic + scale *
    epistemic). 1 is the plain expected free energy."""
    knn_k: int = 3
    """k of the k-nearest-neighbour entropy estimate (needs particles > knn_k)."""

    preference: str = "auto"
    """auto | task | reward | pixel-goal | latent-goal | contrastive | flow: where log p̃
    comes from; auto: task with state vectors, reward with pixels (the task's preference
    scores state vectors, and a goal image has to be given: goal_source=file)."""
    preference_temperature: float = 1.0
    """Temperature T of the reward preference, log p̃ = r / T."""
    goal_scale: float = 1.0
    """latent-goal: std of the Gaussian similarity in latent units; pixel-goal: the
    per-pixel Laplace b (Gaussian σ) on intensities in [0, 1] is goal_scale / 10."""
    pixel_likelihood: str = "laplace"
    """laplace | gaussian: the per-pixel density of pixel-goal."""
    goal_source: str = "task"
    """task (the task's goal written into the first observation; state only) | file (goals)
    | diffusion (draws from a diffusion prior fitted to demos)."""
    goals: str = ""
    """Goal observations for goal_source=file: an .npz holding obs (K, *obs_shape)."""
    goal_per_episode: bool = False
    """Draw a new goal every episode (otherwise the first goal, as published agents do)."""
    demos: str = ""
    """Demonstrations for preference=flow or goal_source=diffusion: .npz rollouts (obs)."""
    prior_steps: int = 1000
    """Fitting steps of the flow / diffusion prior over demonstration states."""
    contrastive_negatives: int = 64
    """Observations the goal is contrasted with (preference=contrastive)."""
    contrastive_temperature: float = 0.1
    """InfoNCE temperature."""

    prefill: int = 200
    """Agent steps of uniformly random actions before planning (whole episodes)."""
    explore_noise: float = 0.0
    """Std of Gaussian noise added to planned actions while training (the planner's own
    sampling already explores; on inverted-pendulum 0.1 kept the pole from balancing)."""
    train_every: int = 25
    """Agent steps between training phases."""
    train_steps: int = 25
    """World-model (and policy) updates per training phase."""
    pretrain_steps: int = 500
    """Extra updates at the first training phase, on the prefill data."""
    batch_size: int = 0
    """Chunks per update (0: the world model's own)."""
    seq_len: int = 0
    """Observations per chunk (0: the world model's own; capped by the longest episode)."""
    lr: float = 0.0
    """World-model learning rate (0: the world model's own)."""
    capacity: int = 200_000
    """Replay capacity in observations."""
    grad_clip: float = 100.0
    """Gradient-norm clip of the world model."""

    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    """planner=policy or policy_proposals > 0: the actor-critic's sizes and learning settings, e.g.
    ``--set "policy={hidden: [64, 64], horizon: 10}"``."""

    def __post_init__(self) -> None:
        _check_choice("obs", self.obs, OBS)
        _check_choice("planner", self.planner, PLANNERS)
        _check_choice("world_model", self.world_model, WORLD_MODELS)
        _check_choice("model_size", self.model_size, MODEL_SIZES)
        _check_choice("precision", self.precision, PRECISIONS)
        for item in self.model:
            _check("=" in item, "model", item, "key=value items")
        _check_choice("epistemic", self.epistemic, ("auto", *ESTIMATORS))
        _check_choice("preference", self.preference, ("auto", *SOURCES))
        _check_choice("goal_source", self.goal_source, GOAL_SOURCES)
        _check_choice("pixel_likelihood", self.pixel_likelihood, PIXEL_LIKELIHOODS)
        for name in (
            "particles",
            "train_every",
            "capacity",
            "contrastive_negatives",
            "prior_steps",
        ):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        for name in (
            "prefill",
            "train_steps",
            "pretrain_steps",
            "batch_size",
            "seq_len",
            "policy_proposals",
        ):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        _check(self.seq_len != 1, "seq_len", self.seq_len, "0 (the model's own) or >= 2")
        for name in ("explore_noise", "lr", "epistemic_scale"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0")
        for name in (
            "preference_temperature",
            "goal_scale",
            "contrastive_temperature",
            "grad_clip",
        ):
            _check(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        self.planner_config()
        self.objective_config()
        if self.policy_proposals:
            _check(
                self.planner != "policy",
                "policy_proposals",
                self.policy_proposals,
                "0 with planner=policy (the policy acts itself)",
            )
            _check(
                self.policy_proposals < self.candidates,
                "policy_proposals",
                self.policy_proposals,
                f"< candidates={self.candidates}",
            )
        kind, est = self.world_model_name, self.estimator
        _check(kind == "rssm" or self.obs == "state", "world_model", kind, "rssm for pixels")
        if kind == "rssm":
            _check(
                est not in MEMBER_ESTIMATORS,
                "epistemic",
                est,
                "latent or knn with the rssm (disagreement and mixture need the ensemble)",
            )
            # latent compares the posterior with the Gaussian of the prior's stats, which is
            # the prior itself only when stoch_prior is gaussian.
            stoch_prior = self.model_overrides().get("stoch_prior", "gaussian")
            used = self.epistemic == "latent" or self.objective_config().uses_epistemic
            _check(
                est != "latent" or not used or stoch_prior == "gaussian",
                "epistemic",
                est,
                f"knn with the rssm's stoch_prior={stoch_prior}: latent (auto's choice for the "
                "rssm) compares Gaussian stats, not this prior's KL",
            )
        else:
            _check(
                est != "latent", "epistemic", est, "disagreement, mixture or knn with the ensemble"
            )
        if est == "knn":
            _check(
                self.obs == "state", "epistemic", est, "not knn with pixels (too many dimensions)"
            )
            _check(
                self.particles > self.knn_k, "particles", self.particles, f"> knn_k={self.knn_k}"
            )
            # The policy imagines one future per start state: no sample to estimate from.
            _check(
                not self.trains_policy or not self.objective_config().uses_epistemic,
                "epistemic",
                est,
                "not knn with a policy (planner=policy or policy_proposals > 0: one imagined "
                "future per state)",
            )
        if self.preference_source in ("task", "flow"):
            _check(
                self.obs == "state",
                "preference",
                self.preference_source,
                "pixel-goal, latent-goal, "
                "contrastive or reward with pixels (task and flow score state vectors)",
            )
        if self.preference_source == "pixel-goal":
            _check(self.obs == "pixels", "preference", self.preference, "used with pixels")
        if self.preference_source == "flow":
            _check(self.demos != "", "demos", self.demos, "an .npz of demonstrations for flow")
        if self.uses_goal:
            if self.goal_source == "task":
                _check(self.obs == "state", "goal_source", "task", "file or diffusion with pixels")
            if self.goal_source == "file":
                _check(self.goals != "", "goals", self.goals, "an .npz of goal observations")
            if self.goal_source == "diffusion":
                _check(self.demos != "", "demos", self.demos, "an .npz of demonstrations")
                _check(self.obs == "state", "goal_source", "diffusion", "used with state obs")

    # -- derived ----------------------------------------------------------------------------
    def model_overrides(self) -> dict[str, Any]:
        """The world-model Config overrides of ``model``, values read as YAML (lists as
        tuples)."""
        values = {}
        for item in self.model:
            key, _, text = item.partition("=")
            value = yaml.safe_load(text)
            values[key.strip()] = tuple(value) if isinstance(value, list) else value
        return values

    @property
    def world_model_name(self) -> str:
        if self.world_model != "auto":
            return self.world_model
        return "rssm" if self.obs == "pixels" else "ensemble"

    @property
    def estimator(self) -> str:
        if self.epistemic != "auto":
            return self.epistemic
        return "latent" if self.world_model_name == "rssm" else "mixture"

    @property
    def preference_source(self) -> str:
        """The preference in use: ``preference`` with ``auto`` resolved."""
        if self.preference != "auto":
            return self.preference
        return "task" if self.obs == "state" else "reward"

    @property
    def trains_policy(self) -> bool:
        """Whether the amortised policy is trained: to act, or to propose plans."""
        return self.planner == "policy" or self.policy_proposals > 0

    @property
    def uses_goal(self) -> bool:
        return self.preference_source in ("pixel-goal", "latent-goal", "contrastive")

    def planner_config(self) -> PlannerConfig:
        return PlannerConfig(
            kind="cem" if self.planner == "policy" else self.planner,
            horizon=self.horizon,
            candidates=self.candidates,
            iterations=self.iterations,
            elites=self.elites,
            keep_elites=self.keep_elites,
            noise_beta=self.noise_beta,
            temperature=self.temperature,
            momentum=self.momentum,
            init_std=self.init_std,
            min_std=self.min_std,
        )

    def objective_config(self) -> ObjectiveConfig:
        _check_choice("objective", self.objective, OBJECTIVES)
        return ObjectiveConfig(
            objective=self.objective,
            epistemic=self.estimator,
            epistemic_scale=self.epistemic_scale,
            knn_k=self.knn_k,
            discount=self.discount,
            end_is_failure=self.end_is_failure,
            action_prior_std=self.action_prior_std,
        )


# Per-task settings (see the README's "Active inference" section for the reasoning).
TUNED: dict[str, dict[str, Any]] = {
    # Swing-up needs to see further than balancing: 20 decisions = 40 env steps.
    "pendulum": {"horizon": 20},
    # Exploration is the whole problem: a long horizon (30 x 4 env steps) and an epistemic
    # weight large enough to compete with the steep log-preference around the flag.
    "mountaincar": {
        "horizon": 30,
        "candidates": 500,
        "elites": 50,
        "epistemic_scale": 30.0,
        "model": ("hidden=64",),
    },
    # Balancing is unstable: an open-loop plan's error grows ~e^(5t), so costs are sharp
    # in the early actions (perturbing a good plan by the default 0.5-std noise left no
    # candidate near it) and a learned model's errors compound past ~0.6 s. A narrow first
    # search with few elites (one seed in five fell without it, none in ten with it) over 8
    # decisions = 16 env steps (0.64 s); with the default search and 15 decisions even CEM
    # on a near-exact linear model dropped the pole (benchmarks/bench_planner.py).
    # The amortised policy (planner=policy) for the same reason imagines only 5 decisions,
    # with a larger entropy bonus: with the defaults (15 decisions, 1e-3) it pushed the cart
    # to the rail's end on every seed tried; with these it balanced on 4 of 8, and once
    # imagined states were clamped straight-through, 13 of 16 (README).
    "inverted-pendulum": {
        "horizon": 8,
        "init_std": 0.2,
        "elites": 20,
        "policy": {"horizon": 5, "entropy_scale": 0.01},
    },
    "reacher": {"horizon": 10},
}
