"""Discrete active inference (pymdp): behaviour on the discrete tasks, Dirichlet learning,
the logged EFE decomposition, the NumPy EFE against pymdp, and runs through the CLI.

Agents are built once per module (compiling a model shape takes 1-4 s; see agents.discrete).
"""

import json

import numpy as np
import pytest
from run_files import only_run_dir

from agents.base import is_timing, make_agent_env
from agents.discrete import Config, PymdpAgent
from agents.discrete_efe import neg_efe_of_policies, neg_efe_terms
from envs import discrete
from runs import cli
from runs.checkpoint import load_checkpoint, save_checkpoint


def _agent(task, **changes):
    cfg = Config(**{**PymdpAgent.tuned(task), "task": task, **changes})
    return PymdpAgent(cfg, make_agent_env(task), None, seed=0)


def _episode(agent, env, seed):
    """Observations (the first from reset) and decision records of one greedy episode."""
    obs, _ = env.reset(seed=seed)
    seen, steps, state = [obs], [], None
    while True:
        action, state = agent.act(obs, state)
        steps.append(state)
        obs, _, terminated, truncated, info = env.step(action)
        seen.append(obs)
        if terminated or truncated:
            return seen, steps, info


@pytest.fixture(scope="module")
def tmaze_agent():
    return _agent("tmaze")


# -- behaviour ---------------------------------------------------------------------------------


def test_tmaze_agent_reads_the_cue_then_enters_the_cued_arm(tmaze_agent):
    # pymdp's T-maze demo: C = +2 reward, -3 punishment, uniform prior over the reward arm;
    # the cue is right with probability 0.95, so "cued arm" is the arm the cue showed.
    env = make_agent_env("tmaze")
    good = rewarded = 0
    for seed in range(50):
        seen, _, _ = _episode(tmaze_agent, env, seed)
        locations = [int(o[0]) for o in seen[1:]]
        cue = int(seen[1][2])
        arm = discrete.LEFT if cue == discrete.CUE_LEFT else discrete.RIGHT
        good += locations[0] == discrete.CUE and locations[-1] == arm
        rewarded += int(seen[-1][1]) == discrete.REWARD
    assert good >= 45  # the bar: 90% of 50 trials
    assert rewarded >= 40  # 95% valid cues: ~47.5 expected


def test_tmaze_agent_without_state_information_gain_ignores_the_cue():
    agent = _agent("tmaze", use_states_info_gain=False)
    env = make_agent_env("tmaze")
    cue_visits = 0
    for seed in range(50):
        seen, _, _ = _episode(agent, env, seed)
        cue_visits += any(int(o[0]) == discrete.CUE for o in seen)
    assert cue_visits == 0  # an unresolved 50/50 arm is worth 0.5*2 - 0.5*3 < 0: it stays


@pytest.mark.parametrize(("cue2_state", "condition"), [(1, 0), (2, 1)])
def test_cue_chaining_agent_visits_both_cues_in_order_then_the_cheese(cue2_state, condition):
    # The agent believes in pymdp's uniform priors over both hidden factors; the episode's
    # env fixes them. With policy depth 4 the cheese must lie within 4 moves of the second
    # cue: it does for these two layouts ((1, 3) -> (1, 5) and (3, 3) -> (3, 5)).
    agent = _agent("cue-chaining")
    env = discrete.CueChainingEnv(cue2_state=cue2_state, reward_condition=condition)
    seen, _, _ = _episode(agent, env, seed=0)
    cols = discrete.CC_SHAPE[1]
    index = {name: r * cols + c for name, (r, c) in (
        ("cue1", discrete.CC_CUE1), ("cue2", discrete.CC_CUE2[cue2_state]),
        ("cheese", discrete.CC_REWARDS[condition]))}  # fmt: skip
    path = [int(o[0]) for o in seen]
    first = {name: path.index(cell) for name, cell in index.items()}
    assert first["cue1"] < first["cue2"] < first["cheese"] == len(path) - 1
    assert int(seen[-1][3]) == discrete.CHEESE


def test_gridworld_agent_reaches_the_goal_by_a_shortest_path():
    agent = _agent("gridworld")  # inductive planning: the goal is 8 moves away
    env = make_agent_env("gridworld")
    seen, _, info = _episode(agent, env, seed=0)
    assert info["success"] and len(seen) - 1 == 8  # (0, 0) -> (0, 4) -> (4, 4)


def test_frozenlake_agent_reaches_the_goal_often():
    agent = _agent("frozenlake")
    env = make_agent_env("frozenlake")
    wins = sum(_episode(agent, env, seed)[2]["success"] for seed in range(20))
    assert wins >= 6  # slippery ice: 10 of 20 measured; a random policy wins ~1.5%


# -- learning ----------------------------------------------------------------------------------


def _train(agent, task, steps):
    agent.train_until(make_agent_env(task, seed=0), steps, lambda metrics, step: None)


# A flat Dirichlet prior of 0.1 pseudo-counts per entry: 2.5 per column of 25 outcomes, so
# a cell seen ~20 times has its learned column ~0.9 on the true outcome.
LEARN = {"inductive": False, "policy_len": 1, "prior_count": 0.1}


def test_dirichlet_learning_moves_A_toward_the_true_likelihood():
    agent = _agent("gridworld", learn_A=True, **LEARN)
    truth = discrete.gridworld_model().A[0]
    before = np.abs(agent.A[0] - truth).sum()
    _train(agent, "gridworld", 300)
    after = np.abs(agent.A[0] - truth).sum()
    assert after < 0.5 * before  # the 6 walls are never visited: their columns stay flat
    visited = np.asarray(agent._agent.pA[0][0]).sum(0) > 3.5  # cells stood on at least once
    assert np.all(np.argmax(agent.A[0][:, visited], axis=0) == np.flatnonzero(visited))


def test_dirichlet_learning_moves_B_toward_the_true_transitions():
    agent = _agent("gridworld", learn_B=True, **LEARN)
    truth = discrete.gridworld_model().B[0]
    before = np.abs(agent.B[0] - truth).sum()
    _train(agent, "gridworld", 300)
    assert np.abs(agent.B[0] - truth).sum() < 0.8 * before  # unvisited moves stay flat
    tried = np.asarray(agent._agent.pB[0][0]).sum(0) > 3.5  # (cell, action) pairs tried
    assert tried.sum() > 40
    np.testing.assert_array_equal(agent.B[0].argmax(0)[tried], truth.argmax(0)[tried])


def test_learning_agent_state_dict_round_trip(tmp_path):
    agent = _agent("gridworld", learn_A=True, **LEARN)
    _train(agent, "gridworld", 60)
    state = load_checkpoint(save_checkpoint({"a": agent.state_dict()}, tmp_path / "a.pt"))["a"]
    other = _agent("gridworld", learn_A=True, **LEARN)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.A[0], agent.A[0])
    assert (other.env_steps, other.episode) == (agent.env_steps, agent.episode)
    _train(agent, "gridworld", 120)
    _train(other, "gridworld", 120)
    np.testing.assert_array_equal(other.A[0], agent.A[0])


# -- expected free energy ------------------------------------------------------------------------


def _parts_sum(step):
    return step.pragmatic + step.epistemic + step.novelty + step.inductive


def test_logged_efe_parts_sum_to_pymdps_neg_efe(tmaze_agent):
    _, steps, _ = _episode(tmaze_agent, make_agent_env("tmaze"), seed=0)
    for step in steps:
        np.testing.assert_allclose(_parts_sum(step), step.neg_efe, atol=1e-5)
    # At the start only the cue is informative: the first move's value is epistemic.
    assert steps[0].epistemic[steps[0].policy] > 0.3 and steps[0].action == discrete.CUE


@pytest.mark.parametrize(
    "changes",
    [{"learn_A": True, "use_param_info_gain": True, "inductive": False}, {"inductive": True}],
    ids=["novelty", "inductive"],
)
def test_logged_efe_parts_sum_with_novelty_and_inductive_terms(changes):
    agent = _agent("gridworld", policy_len=2, **changes)
    _, steps, _ = _episode(agent, make_agent_env("gridworld"), seed=0)
    name = "novelty" if "learn_A" in changes else "inductive"
    assert any(np.abs(getattr(s, name)).max() > 1e-3 for s in steps)
    for step in steps:
        np.testing.assert_allclose(_parts_sum(step), step.neg_efe, rtol=1e-5, atol=1e-4)


def test_numpy_efe_matches_the_agents_on_the_tmaze(tmaze_agent):
    model = discrete.tmaze_model()
    _, steps, _ = _episode(tmaze_agent, make_agent_env("tmaze"), seed=1)
    for step in steps:
        ours = neg_efe_of_policies(
            step.qs, model.A, model.B, model.C, tmaze_agent.policies,
            model.A_dependencies, model.B_dependencies,
        )  # fmt: skip
        np.testing.assert_allclose(ours["neg_efe"], step.neg_efe, atol=1e-5)
        np.testing.assert_allclose(ours["epistemic"], step.epistemic, atol=1e-5)


def _random_model(rng):
    """Two factors (3 and 2 states, 3 and 2 actions), two modalities, one of them seeing
    both factors; Dirichlet counts for the novelty term."""

    def columns(n, *shape):
        return np.moveaxis(rng.dirichlet(np.ones(n), size=shape), -1, 0)

    A = [columns(4, 3, 2), columns(3, 2)]
    B = [columns(3, 3, 3), columns(2, 2, 2)]
    C = [rng.normal(size=4), rng.normal(size=3)]
    qs = [rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(2))]
    pA = [a * rng.uniform(1, 5) + 0.2 for a in A]
    pB = [b * rng.uniform(1, 5) + 0.2 for b in B]
    return qs, A, B, C, pA, pB


@pytest.fixture(scope="module")
def pymdp_neg_efe():
    """pymdp's ``compute_neg_efe_policy`` of every policy, compiled once (eager: ~1 s each)."""
    import functools

    import jax
    from pymdp import control

    A_deps, B_deps = [[0, 1], [1]], [[0], [1]]

    @jax.jit
    def neg_efe(qs, A, B, C, pA, pB, policies):
        one = functools.partial(
            control.compute_neg_efe_policy, qs, A, B, C, pA, pB, A_deps, B_deps,
            use_param_info_gain=True,
        )  # fmt: skip
        return jax.vmap(one)(policies)

    return A_deps, B_deps, neg_efe


@pytest.mark.parametrize("seed", range(3))
def test_numpy_efe_matches_pymdp_on_random_models(seed, pymdp_neg_efe):
    import jax.numpy as jnp
    from pymdp import control

    A_deps, B_deps, neg_efe = pymdp_neg_efe
    qs, A, B, C, pA, pB = _random_model(np.random.default_rng(seed))
    policies = np.asarray(control.construct_policies([3, 2], [3, 2], 2, [0, 1]))
    ours = neg_efe_of_policies(qs, A, B, C, policies, A_deps, B_deps, pA, pB)

    def j(arrays):
        return [jnp.asarray(a, dtype=jnp.float32) for a in arrays]

    theirs = np.asarray(neg_efe(j(qs), j(A), j(B), j(C), j(pA), j(pB), jnp.asarray(policies)))
    # pymdp computes in float32 (values of a few nats): 1e-5 is a few float32 roundings.
    np.testing.assert_allclose(ours["neg_efe"], theirs, atol=1e-5, rtol=1e-6)
    assert np.all(ours["novelty"] > 0) and np.all(ours["epistemic"] > 0)


def test_numpy_efe_on_a_hand_computed_case():
    # One factor of two equally likely states, observed exactly, one action that keeps the
    # state: the outcome resolves log 2 nats of uncertainty; C = log(0.8, 0.2) gives a
    # utility of 0.5 log 0.8 + 0.5 log 0.2.
    A, B = [np.eye(2)], [np.eye(2)[:, :, None]]
    C = [np.log([0.8, 0.2])]
    terms = neg_efe_terms([np.full(2, 0.5)], A, B, C, np.zeros((1, 1), int), [[0]], [[0]])
    assert terms["epistemic"] == pytest.approx(np.log(2))
    assert terms["pragmatic"] == pytest.approx(0.5 * np.log(0.8) + 0.5 * np.log(0.2))
    # A blind observation (the same outcome in every state) resolves nothing.
    blind = neg_efe_terms([np.full(2, 0.5)], [np.ones((1, 2))], B, [np.zeros(1)],
                          np.zeros((2, 1), int), [[0]], [[0]])  # fmt: skip
    assert blind["epistemic"] == pytest.approx(0.0)


# -- objectives ---------------------------------------------------------------------------------


def test_reward_objective_turns_reward_into_log_preferences():
    agent = _agent("tmaze", objective="reward", reward_temperature=0.5)
    C = agent.preferences()
    np.testing.assert_array_equal(C[1], [0.0, 2.0, -2.0])  # reward +1 / -1 over 0.5
    assert not C[0].any() and not C[2].any()
    seen, _, _ = _episode(agent, make_agent_env("tmaze"), seed=0)
    assert int(seen[1][0]) == discrete.CUE  # still worth reading the cue first


# -- through the CLI ----------------------------------------------------------------------------

SMOKE = ["train-agent", "--agent", "pymdp", "--env", "tmaze", "--objective", "preference",
         "--preset", "smoke", "--quiet"]  # fmt: skip


def read_metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if not is_timing(k)} for x in lines]


@pytest.mark.video
def test_smoke_run_logs_every_step_and_draws_beliefs(out_dir):
    assert cli.main([*SMOKE, "--out", str(out_dir)]) == 0
    run_dir = only_run_dir(out_dir)
    assert run_dir.parent.name == "pymdp-preference-tmaze"
    records = read_metrics(run_dir)
    steps = [r for r in records if "efe/neg_efe" in r]
    assert [r["step"] for r in steps] == list(range(1, 401))  # every training step
    for r in steps:
        assert r["efe/neg_efe"] == pytest.approx(r["efe/pragmatic"] + r["efe/epistemic"], abs=1e-5)
    assert [r["step"] for r in records if "eval/success" in r] == [200, 400]
    assert all(r["eval/success"] >= 0.5 for r in records if "eval/success" in r)
    names = sorted(p.name for p in run_dir.glob("*/*") if p.suffix != ".pt")
    assert "beliefs-0000400-0.gif" in names and "efe-0000400-0.png" in names
    trace = np.load(run_dir / "plots" / "trace-0000400-0.npz")
    assert trace["neg_efe"].shape == (4, 125) and trace["qs_f1"].shape == (4, 2)

    assert cli.main(["record", "--run", str(run_dir), "--episodes", "1", "--out",
                     str(out_dir), "--quiet"]) == 0  # fmt: skip
    record_dir = only_run_dir(out_dir, "record")
    assert (record_dir / "videos" / "beliefs-episode-0.mp4").is_file()
    assert (record_dir / "plots" / "efe-episode-0.png").is_file()


class SimulatedKill(Exception):
    pass


def test_killed_learning_run_resumes_to_identical_metrics(out_dir, tmp_path, monkeypatch):
    args = [*SMOKE, "--set", "learn_A=true", "log_every=10"]
    assert cli.main([*args, "--out", str(tmp_path / "whole"), "--steps", "300"]) == 0
    whole = only_run_dir(tmp_path / "whole")

    decide = PymdpAgent._decide

    def dies_at_250(self, *a, **k):
        if self.env_steps == 250:  # after the checkpoint at 200
            raise SimulatedKill
        return decide(self, *a, **k)

    monkeypatch.setattr(PymdpAgent, "_decide", dies_at_250)
    with pytest.raises(SimulatedKill):
        cli.main([*args, "--out", str(out_dir), "--steps", "300"])
    monkeypatch.setattr(PymdpAgent, "_decide", decide)
    run_dir = only_run_dir(out_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 200
    assert cli.main(["train-agent", "--resume", str(run_dir), "--quiet"]) == 0
    assert read_metrics(run_dir) == read_metrics(whole)


@pytest.mark.parametrize(("task", "algo"), [("tmaze", "ovf"), ("gridworld", "exact")])
def test_other_inference_algorithms_solve_the_tasks(task, algo):
    agent = _agent(task, inference_algo=algo)
    env = make_agent_env(task)
    assert sum(_episode(agent, env, seed)[2]["success"] for seed in range(4)) >= 3


def test_exact_inference_with_several_factors_is_refused():
    with pytest.raises(ValueError, match="single hidden-state factor"):
        _agent("tmaze", inference_algo="exact")
