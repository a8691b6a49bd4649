"""Discrete active inference with pymdp 1.0 behind the :class:`agents.base.Agent` interface.

The agent is pymdp's ``Agent`` built from a discrete task's generative model
(:func:`envs.discrete.model_of`: ``A``, ``B``, ``C``, ``D`` in pymdp's layout, ``C`` the
log-preferences over outcomes):

- ``objective=preference`` plans toward the task's own ``C``; ``objective=reward`` replaces
  ``C`` by the reward of each outcome divided by ``reward_temperature`` (reward as
  log-preferences), nothing else changes;
- the agent is given the true model, or learns ``A`` and/or ``B`` with pymdp's Dirichlet
  updates (``learn_A``, ``learn_B``) from a flat prior of ``prior_count`` pseudo-counts
  per entry (plus ``true_model_count`` pseudo-counts on the true model);
- policy depth, inference algorithm, state and parameter information gain, inductive
  planning and the policy and action precisions are settings of :class:`Config`.

Each decision is one call of :func:`_decide`, compiled once per model shape with
``equinox.filter_jit`` and reused by every agent of that shape (pymdp run eagerly costs
about a second a step; compiled, about a millisecond). It infers states, scores every
policy (pymdp's ``neg_efe``, plus its pragmatic, epistemic, novelty and inductive parts),
learns when asked, picks the action (argmax of ``q_pi``, or a sample with precision
``alpha`` while exploring) and predicts the next prior. JAX stays inside this module:
arrays cross its boundary as NumPy, and nothing imports it until the agent is used.

Logged every ``log_every`` training steps (names in :data:`STEP_METRICS`): the chosen
policy's negative EFE and its parts, the policy entropy, the belief entropy of each
factor and the action; once, ``timing/compile_s``. The full per-step record (beliefs,
every policy's terms, the action) is the :class:`DiscreteStep` that :meth:`act` returns
as its state; ``runs.discrete_report`` turns episodes of it into belief animations and
EFE bar charts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from agents.base import EpisodeTracker, LogFn, episode_seed
from envs.discrete import model_of
from generative.base import check as _check
from generative.base import check_choice as _check_choice

OBJECTIVES = ("preference", "reward")
INFERENCE_ALGOS = ("fpi", "ovf", "exact")
"""pymdp's single-step (filtering) inference algorithms; ``exact`` needs one factor."""

STEP_METRICS = {
    "efe/neg_efe": "negative expected free energy of the chosen policy (pymdp's neg_efe)",
    "efe/pragmatic": "its pragmatic part: expected log-preference of outcomes (utility)",
    "efe/epistemic": "its epistemic part: expected information gain about states",
    "efe/novelty": "its parameter information gain (with use_param_info_gain)",
    "efe/inductive": "its inductive value (with inductive planning)",
    "efe/policy_entropy": "entropy of the posterior over policies q_pi (nats)",
    "belief/entropy_f<f>": "entropy of the posterior over hidden-state factor f (nats)",
    "charts/action": "the action taken",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """pymdp agent settings (pymdp's defaults unless said otherwise)."""

    policy_len: int = 2
    """Policy depth: actions per policy; every sequence of that length is scored."""
    inference_algo: str = "fpi"
    """State inference: fpi | ovf | exact (pymdp's filtering algorithms)."""
    num_iter: int = 16
    """Fixed-point iterations of state inference."""
    use_utility: bool = True
    """Score policies by expected log-preference of outcomes (the pragmatic value)."""
    use_states_info_gain: bool = True
    """Score policies by expected information gain about hidden states (epistemic value)."""
    use_param_info_gain: bool = False
    """Score policies by expected information gain about A/B (novelty; needs learning)."""
    inductive: bool = False
    """Add pymdp's inductive value toward the task's goal states H (grid tasks)."""
    inductive_depth: int = 0
    """Backward-induction depth of inductive planning (0: the number of locations)."""
    inductive_epsilon: float = 1e-3
    """Weight of the inductive value (pymdp's inductive_epsilon)."""
    gamma: float = 16.0
    """Policy precision: q_pi = softmax(gamma * neg_efe + log E)."""
    alpha: float = 16.0
    """Action precision while exploring: policies sampled from q_pi ** alpha."""
    learn_A: bool = False
    """Learn A with Dirichlet updates (from pA = prior_count + true_model_count * A)."""
    learn_B: bool = False
    """Learn B with Dirichlet updates (from pB = prior_count + true_model_count * B)."""
    prior_count: float = 1.0
    """Flat Dirichlet pseudo-counts per entry of a learned A or B."""
    true_model_count: float = 0.0
    """Dirichlet pseudo-counts placed on the true A or B (0: nothing known)."""
    learning_rate: float = 1.0
    """Weight of one observation in the Dirichlet counts (pymdp's lr_pA / lr_pB)."""
    reward_temperature: float = 1.0
    """objective=reward: C = reward / reward_temperature."""
    log_every: int = 1
    """Training steps between per-step logs (1: every step)."""
    task: str = ""
    """The task (filled in by train-agent)."""
    objective: str = "preference"
    """preference (the task's C) | reward (reward as log-preferences)."""

    def __post_init__(self) -> None:
        _check(self.policy_len >= 1, "policy_len", self.policy_len, ">= 1")
        _check_choice("inference_algo", self.inference_algo, INFERENCE_ALGOS)
        _check(self.num_iter >= 1, "num_iter", self.num_iter, ">= 1")
        _check(self.inductive_depth >= 0, "inductive_depth", self.inductive_depth, ">= 0")
        for name in ("gamma", "alpha", "prior_count", "learning_rate", "reward_temperature"):
            _check(getattr(self, name) > 0, name, getattr(self, name), "> 0")
        _check(self.true_model_count >= 0, "true_model_count", self.true_model_count, ">= 0")
        _check(self.log_every >= 1, "log_every", self.log_every, ">= 1")
        _check_choice("objective", self.objective, OBJECTIVES)
        _check(
            not self.use_param_info_gain or self.learn_A or self.learn_B,
            "use_param_info_gain",
            self.use_param_info_gain,
            "false unless learn_A or learn_B (there is nothing to learn about)",
        )


# Per-task settings: policy depths that reach the first informative or preferred outcome,
# and inductive planning where the goal lies beyond any affordable depth.
TUNED: dict[str, dict[str, Any]] = {
    "tmaze": {"policy_len": 3},
    "gridworld": {"policy_len": 2, "inductive": True},
    "cue-chaining": {"policy_len": 4},
    "frozenlake": {"policy_len": 2, "inductive": True},
}


@dataclasses.dataclass
class DiscreteStep:
    """One decision: what the agent believed, how it scored its policies, what it did.

    Shapes: ``qs[f]`` ``(num_states[f],)``; ``q_pi``, ``neg_efe`` and its parts
    ``(num_policies,)`` with ``neg_efe = pragmatic + epistemic + novelty + inductive``
    (each part 0 when switched off); ``prior`` is the empirical prior of the next step.
    """

    qs: list[np.ndarray]
    q_pi: np.ndarray
    neg_efe: np.ndarray
    pragmatic: np.ndarray
    epistemic: np.ndarray
    novelty: np.ndarray
    inductive: np.ndarray
    policy: int
    """Index of the chosen policy."""
    action: int
    """The env action (the first action of the chosen policy on the controlled factor)."""
    controls: np.ndarray
    """``(num_factors,)``: the first action of the chosen policy on every factor."""
    prior: list[np.ndarray]


def _compiled_decide() -> Any:
    """Import JAX and the compiled step on first use (never at module import)."""
    global _decide
    if _decide is None:
        _decide = _build_decide()
    return _decide


_decide: Any = None


def _build_decide() -> Any:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import jax.tree_util as jtu
    from pymdp import control

    def policy_terms(agent: Any, qs_now: list[Any]) -> Any:
        """``(num_policies, 4)``: utility, state info gain, parameter info gain (negated
        back to a gain) and inductive value of every policy, with pymdp's own pieces."""
        A = [a[0] for a in agent.A]
        B = [b[0] for b in agent.B]
        C = [c[0] for c in agent.C]
        pA = None if agent.pA is None else [p[0] for p in agent.pA]
        pB = None if agent.pB is None else [p[0] for p in agent.pB]
        I_ = [i[0] for i in agent.I]
        epsilon = agent.inductive_epsilon[0]

        def one(policy: Any) -> Any:
            def body(carry: Any, t: Any) -> Any:
                qs, total = carry
                qs_next = control.compute_expected_state(qs, B, policy[t], agent.B_dependencies)
                qo = control.compute_expected_obs(qs_next, A, agent.A_dependencies)
                zero = jnp.zeros(())
                utility = control.compute_expected_utility(qo, C, t) if agent.use_utility else zero
                info = (
                    control.compute_info_gain(qs_next, qo, A, agent.A_dependencies)
                    if agent.use_states_info_gain
                    else zero
                )
                novelty = zero
                if agent.use_param_info_gain and pA is not None:
                    novelty -= control.calc_negative_pA_info_gain(
                        pA, qo, qs_next, agent.A_dependencies
                    )
                if agent.use_param_info_gain and pB is not None:
                    novelty -= control.calc_negative_pB_info_gain(
                        pB, qs_next, qs, agent.B_dependencies, policy[t]
                    )
                inductive = (
                    control.calc_inductive_value_t(qs_now, qs_next, I_, epsilon=epsilon)
                    if agent.use_inductive
                    else zero
                )
                step = jnp.stack([utility, info, novelty, inductive])
                return (qs_next, total + step), None

            (_, total), _ = jax.lax.scan(body, (qs_now, jnp.zeros(4)), jnp.arange(policy.shape[0]))
            return total

        return jax.vmap(one)(agent.policies.policy_arr)

    @eqx.filter_jit
    def decide(
        agent: Any,
        obs: Any,
        prior: list[Any],
        qs_prev: list[Any],
        controls_prev: Any,
        key: Any,
        explore: Any,
        learn: Any,
        learning_rate: Any,
    ) -> Any:
        observation = [obs[m][None, None] for m in range(len(agent.A))]  # (batch, time)
        prior = [p[None] for p in prior]
        qs = agent.infer_states(observation, prior)
        q_pi, neg_efe = agent.infer_policies(qs)
        qs_now = [q[0, -1] for q in qs]
        terms = policy_terms(agent, qs_now)
        if agent.learn_A or agent.learn_B:
            # pymdp's online update (as its rollout does it): A from (o_t, q(s_t)); B from
            # (q(s_t-1), u_t-1, q(s_t)); a negative previous action (the first step of an
            # episode) masks the transition out.
            beliefs_B = jtu.tree_map(
                lambda before, now: jnp.concatenate([before[None, None], now], axis=1),
                qs_prev,
                qs,
            )

            def update(model: Any) -> Any:
                return model.infer_parameters(
                    qs,
                    observation,
                    controls_prev[None, None],
                    beliefs_B=beliefs_B if model.learn_B else None,
                    lr_pA=learning_rate,
                    lr_pB=learning_rate,
                )

            params, static = eqx.partition(agent, eqx.is_array)
            learned, _ = eqx.partition(update(agent), eqx.is_array)
            params = jtu.tree_map(lambda new, old: jnp.where(learn, new, old), learned, params)
            agent = eqx.combine(params, static)
        key, sample_key = jr.split(key)
        sampled = jr.categorical(sample_key, jnp.log(jnp.clip(q_pi[0], 1e-16)) * agent.alpha[0])
        policy = jnp.where(explore, sampled, jnp.argmax(q_pi[0]))
        controls = agent.policies.policy_arr[policy, 0]
        next_prior = agent.update_empirical_prior(controls[None], qs)
        return {
            "agent": agent,
            "key": key,
            "qs": qs_now,
            "q_pi": q_pi[0],
            "neg_efe": neg_efe[0],
            "terms": terms,
            "policy": policy,
            "controls": controls,
            "prior": [p[0] for p in next_prior],
        }

    return decide


def _entropy(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(-(p * np.log(np.clip(p, 1e-16, None))).sum())


class PymdpAgent:
    """pymdp's active-inference agent acting in a discrete task (see the module docstring).

    ``act`` returns a :class:`DiscreteStep` as its state (``None`` at an episode start).
    ``compile_seconds`` is the time the first decision of this model shape took to compile
    (about 0 when another agent of the same shape compiled it already).
    """

    Config: ClassVar[type] = Config
    SMOKE: ClassVar[Mapping[str, Any]] = {}  # compiled steps take milliseconds: no shrinking
    OBJECTIVES: ClassVar[tuple[str, ...]] = OBJECTIVES
    PLANNERS: ClassVar[tuple[str, ...]] = ()
    OBS: ClassVar[tuple[str, ...]] = ("state",)
    TRACES: ClassVar[bool] = True
    """``act`` returns :class:`DiscreteStep` states (``runs.discrete_report`` draws them)."""

    def __init__(
        self, cfg: Config, env: gym.Env, device: torch.device | None = None, seed: int = 0
    ):
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ValueError(f"pymdp needs a discrete action space, not {env.action_space}")
        self.cfg, self.seed = cfg, seed
        self.model = model_of(env)
        controlled = [f for f, n in enumerate(self.model.num_controls) if n > 1]
        if len(controlled) != 1 or self.model.num_controls[controlled[0]] != env.action_space.n:
            raise ValueError(
                f"the env's {env.action_space.n} actions must drive exactly one factor; "
                f"the model's controls are {self.model.num_controls}"
            )
        self.control_factor = controlled[0]
        self.env_steps = 0
        self.episode = 0
        self._agent = self._build()
        self.policies = np.asarray(self._agent.policies.policy_arr)
        """``(num_policies, policy_len, num_factors)`` action indices."""
        import jax.random as jr

        self._key = np.asarray(jr.key_data(jr.PRNGKey(seed)))
        start = time.perf_counter()
        self._decide(np.zeros(len(self.model.A), dtype=np.int64), None, explore=False)
        self.compile_seconds = time.perf_counter() - start
        self._logged_compile = False

    @classmethod
    def tuned(cls, task: str) -> dict[str, Any]:
        """Per-task overrides of ``Config`` (:data:`TUNED`)."""
        return dict(TUNED.get(task, {}))

    # -- the pymdp model ----------------------------------------------------------------------
    def preferences(self) -> list[np.ndarray]:
        """``C`` the agent plans with: the task's, or reward / temperature per outcome."""
        if self.cfg.objective == "preference":
            return [np.asarray(c, dtype=np.float64) for c in self.model.C]
        if not self.model.reward:
            raise ValueError("this task's model has no reward table for objective=reward")
        return [
            np.asarray(r, dtype=np.float64) / self.cfg.reward_temperature for r in self.model.reward
        ]

    def _build(self) -> Any:
        import jax.numpy as jnp
        from pymdp.agent import Agent

        cfg, model = self.cfg, self.model

        def f32(arrays: list[np.ndarray]) -> list[Any]:
            return [jnp.asarray(a, dtype=jnp.float32) for a in arrays]

        def dirichlet(true: list[np.ndarray]) -> list[np.ndarray]:
            return [cfg.prior_count + cfg.true_model_count * np.asarray(t) for t in true]

        pA = dirichlet(model.A) if cfg.learn_A else None
        pB = dirichlet(model.B) if cfg.learn_B else None
        A = [p / p.sum(0, keepdims=True) for p in pA] if pA is not None else model.A
        B = [p / p.sum(0, keepdims=True) for p in pB] if pB is not None else model.B
        kwargs: dict[str, Any] = {}
        if cfg.inductive:
            if model.H is None:
                raise ValueError("inductive planning needs goal states H; this task has none")
            kwargs = {
                "H": f32(model.H),
                "use_inductive": True,
                "inductive_depth": cfg.inductive_depth or model.num_states[0],
                "inductive_epsilon": cfg.inductive_epsilon,
            }
        return Agent(
            A=f32(A),
            B=f32(B),
            C=f32(self.preferences()),
            D=f32(model.D),
            pA=None if pA is None else f32(pA),
            pB=None if pB is None else f32(pB),
            A_dependencies=model.A_dependencies,
            B_dependencies=model.B_dependencies,
            policy_len=cfg.policy_len,
            gamma=cfg.gamma,
            alpha=cfg.alpha,
            use_utility=cfg.use_utility,
            use_states_info_gain=cfg.use_states_info_gain,
            use_param_info_gain=cfg.use_param_info_gain,
            inference_algo=cfg.inference_algo,
            num_iter=cfg.num_iter,
            learn_A=cfg.learn_A,
            learn_B=cfg.learn_B,
            **kwargs,
        )

    @property
    def A(self) -> list[np.ndarray]:
        """The agent's current likelihood ``A`` (learned or given), without batch axis."""
        return [np.asarray(a[0]) for a in self._agent.A]

    @property
    def B(self) -> list[np.ndarray]:
        """The agent's current transition model ``B``, without batch axis."""
        return [np.asarray(b[0]) for b in self._agent.B]

    # -- acting -------------------------------------------------------------------------------
    def _decide(
        self, obs: Any, state: DiscreteStep | None, explore: bool, learn: bool = False
    ) -> DiscreteStep:
        import jax.numpy as jnp

        if state is None:
            prior = [np.asarray(d[0]) for d in self._agent.D]
            qs_prev, controls_prev = prior, -np.ones(len(self.model.B), dtype=np.int64)
        else:
            prior, qs_prev, controls_prev = state.prior, state.qs, state.controls
        out = _compiled_decide()(
            self._agent,
            jnp.asarray(np.asarray(obs, dtype=np.int32).reshape(-1)),
            [jnp.asarray(p, dtype=jnp.float32) for p in prior],
            [jnp.asarray(q, dtype=jnp.float32) for q in qs_prev],
            jnp.asarray(controls_prev, dtype=jnp.int32),
            jnp.asarray(self._key),
            jnp.asarray(explore),
            jnp.asarray(learn),
            jnp.asarray(self.cfg.learning_rate, dtype=jnp.float32),
        )
        if explore:
            self._key = np.asarray(out["key"])
        if learn:
            self._agent = out["agent"]
        terms = np.asarray(out["terms"], dtype=np.float64)
        controls = np.asarray(out["controls"], dtype=np.int64)
        return DiscreteStep(
            qs=[np.asarray(q, dtype=np.float64) for q in out["qs"]],
            q_pi=np.asarray(out["q_pi"], dtype=np.float64),
            neg_efe=np.asarray(out["neg_efe"], dtype=np.float64),
            pragmatic=terms[:, 0],
            epistemic=terms[:, 1],
            novelty=terms[:, 2],
            inductive=terms[:, 3],
            policy=int(out["policy"]),
            action=int(controls[self.control_factor]),
            controls=controls,
            prior=[np.asarray(p, dtype=np.float64) for p in out["prior"]],
        )

    def act(self, obs: Any, state: Any = None, explore: bool = False) -> tuple[np.ndarray, Any]:
        """The action for ``obs`` (``(num_modalities,)`` outcome indices) and the decision
        record (:class:`DiscreteStep`, the next call's ``state``). ``explore`` samples the
        policy with precision ``alpha`` instead of taking the most probable one."""
        step = self._decide(obs, state, explore)
        return np.int64(step.action), step

    def step_metrics(self, step: DiscreteStep) -> dict[str, float]:
        """The per-step scalars of :data:`STEP_METRICS` for one decision."""
        k = step.policy
        metrics = {
            "efe/neg_efe": float(step.neg_efe[k]),
            "efe/pragmatic": float(step.pragmatic[k]),
            "efe/epistemic": float(step.epistemic[k]),
            "efe/policy_entropy": _entropy(step.q_pi),
            "charts/action": float(step.action),
        }
        if self.cfg.use_param_info_gain:
            metrics["efe/novelty"] = float(step.novelty[k])
        if self.cfg.inductive:
            metrics["efe/inductive"] = float(step.inductive[k])
        for f, q in enumerate(step.qs):
            metrics[f"belief/entropy_f{f}"] = _entropy(q)
        return metrics

    # -- training -----------------------------------------------------------------------------
    def train_until(self, env: gym.Env, env_steps: int, log: LogFn) -> None:
        """Act with sampled policies (and learn A/B when configured), logging each decision
        every ``log_every`` steps and each finished episode."""
        learn = self.cfg.learn_A or self.cfg.learn_B
        if self.env_steps == 0 and not self._logged_compile:  # once per run, not on resume
            log({"timing/compile_s": self.compile_seconds}, self.env_steps)
            self._logged_compile = True
        while self.env_steps < env_steps:
            obs, _ = env.reset(seed=episode_seed(self.seed, self.episode))
            tracker, state = EpisodeTracker(), None
            while True:
                start = time.perf_counter()
                state = self._decide(obs, state, explore=True, learn=learn)
                plan_ms = 1000 * (time.perf_counter() - start)
                obs, reward, terminated, truncated, info = env.step(state.action)
                self.env_steps += 1
                tracker.step(float(reward), info)
                if self.env_steps % self.cfg.log_every == 0:
                    log({**self.step_metrics(state), "timing/plan_ms": plan_ms}, self.env_steps)
                if terminated or truncated:
                    break
            if learn:
                # The last observation of an episode teaches A too (no decision follows it).
                self._decide(obs, state, explore=False, learn=True)
            self.episode += 1
            log(tracker.finish(), self.env_steps)

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Counters, the sampling key and, when learning, the Dirichlet counts and A/B."""
        state: dict[str, Any] = {
            "env_steps": self.env_steps,
            "episode": self.episode,
            "key": torch.as_tensor(self._key.astype(np.int64)),
        }
        if self.cfg.learn_A:
            state["pA"] = [torch.as_tensor(np.array(p)) for p in self._agent.pA]
            state["A"] = [torch.as_tensor(np.array(a)) for a in self._agent.A]
        if self.cfg.learn_B:
            state["pB"] = [torch.as_tensor(np.array(p)) for p in self._agent.pB]
            state["B"] = [torch.as_tensor(np.array(b)) for b in self._agent.B]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        import equinox as eqx
        import jax.numpy as jnp

        self.env_steps = int(state["env_steps"])
        self.episode = int(state["episode"])
        self._key = np.asarray(state["key"]).astype(np.uint32)
        for name in ("pA", "A", "pB", "B"):
            if name in state:
                arrays = [jnp.asarray(np.asarray(t)) for t in state[name]]
                self._agent = eqx.tree_at(
                    lambda a, name=name: getattr(a, name), self._agent, arrays
                )
