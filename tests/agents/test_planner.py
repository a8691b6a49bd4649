"""CEM and MPPI on objectives with a known optimum."""

import dataclasses
import itertools
import sys
from pathlib import Path

import pytest
import torch

from agents.active_inference.planner import PlannerConfig, SamplingPlanner, colored_noise
from envs.tasks import get_task

# A target inside the action box; the cost is its squared distance, minimal (0) there.
TARGET = torch.tensor([[0.5, -0.3], [0.2, 0.7], [-0.6, 0.1], [0.0, -0.9], [0.4, 0.4]])


def quadratic(actions: torch.Tensor) -> torch.Tensor:
    return (actions - TARGET).pow(2).sum((-2, -1))


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_planners_find_the_optimum_of_a_quadratic(kind):
    cfg = PlannerConfig(kind=kind, horizon=5, candidates=500, iterations=8, elites=50)
    torch.manual_seed(0)
    plan = SamplingPlanner(cfg, action_dim=2).plan(quadratic)
    assert plan.mean.shape == (5, 2)
    assert (plan.mean - TARGET).abs().max() < 0.08
    assert plan.cost < 0.05


@pytest.mark.parametrize(("kind", "beta"), [("cem", 2.0), ("mppi", 1.0)])
def test_coloured_noise_still_finds_a_jagged_optimum(kind, beta):
    cfg = PlannerConfig(kind=kind, horizon=5, candidates=500, iterations=12, elites=50)
    cfg = dataclasses.replace(cfg, noise_beta=beta)
    torch.manual_seed(0)
    plan = SamplingPlanner(cfg, action_dim=2).plan(quadratic)
    assert (plan.mean - TARGET).abs().max() < 0.08


def test_coloured_noise_finds_a_smooth_optimum_on_a_small_budget():
    smooth = 0.8 * torch.sin(torch.linspace(0, torch.pi, 20))[:, None]  # (H=20, A=1)

    def cost(actions):
        return (actions - smooth).pow(2).sum((-2, -1))

    for seed in range(3):
        found = {}
        for beta in (0.0, 2.0):
            cfg = PlannerConfig(horizon=20, candidates=100, iterations=4, elites=10)
            torch.manual_seed(seed)
            found[beta] = SamplingPlanner(dataclasses.replace(cfg, noise_beta=beta), 1).plan(cost)
        assert found[2.0].cost < 0.25 * found[0.0].cost, (seed, found)


@pytest.mark.parametrize("steps", [15, 20])
@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_coloured_noise_has_unit_variance_and_a_power_law_spectrum(steps, beta):
    noise = colored_noise((40_000, steps, 2), beta, torch.Generator().manual_seed(0))
    assert noise.shape == (40_000, steps, 2)
    torch.testing.assert_close(noise.var((0, 2)), torch.ones(steps), atol=0.03, rtol=0)
    # The averaged periodogram falls as 1 / f^beta: its log-log slope over the frequencies
    # between the mean and the Nyquist one is -beta.
    power = torch.fft.rfft(noise, dim=1).abs().pow(2).mean((0, 2))[1:-1]
    freqs = torch.fft.rfftfreq(steps)[1:-1]
    x, y = freqs.log() - freqs.log().mean(), power.log() - power.log().mean()
    assert float((x * y).sum() / (x * x).sum()) == pytest.approx(-beta, abs=0.1)


def test_white_noise_is_plain_randn_and_colour_correlates_neighbours():
    draw = colored_noise((10, 15, 1), 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(draw, torch.randn((10, 15, 1), generator=torch.Generator().manual_seed(3)))
    lag1 = []
    for beta in (0.0, 1.0, 2.0, 3.0):
        x = colored_noise((20_000, 15, 1), beta, torch.Generator().manual_seed(0))
        lag1.append(float((x[:, 1:] * x[:, :-1]).mean()))
    assert abs(lag1[0]) < 0.02 and lag1 == sorted(lag1) and lag1[-1] > 0.8


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_an_optimum_outside_the_box_ends_on_its_boundary(kind):
    cfg = PlannerConfig(kind=kind, horizon=2, candidates=300, iterations=6, elites=30)
    torch.manual_seed(0)
    plan = SamplingPlanner(cfg, 1, low=-1.0, high=1.0).plan(lambda a: (a - 3.0).pow(2).sum((1, 2)))
    assert (plan.mean > 0.9).all() and (plan.mean <= 1.0).all()


def test_warm_start_keeps_a_good_plan_and_shifts_it():
    cfg = PlannerConfig(horizon=5, candidates=50, iterations=1, elites=5)
    planner = SamplingPlanner(cfg, 2)
    calls = []

    def cost(actions):
        calls.append(actions.shape)
        return quadratic(actions)

    torch.manual_seed(0)
    plan = planner.plan(cost, mean=TARGET.clone())
    # Candidate 0 is the warm start itself, which is optimal: the plan stays near it.
    assert plan.cost == pytest.approx(0.0, abs=1e-6)
    assert calls == [(50, 5, 2)]  # one batched call per iteration
    shifted = planner.shift(TARGET)
    assert torch.equal(shifted[:-1], TARGET[1:]) and torch.equal(shifted[-1], TARGET[-1])


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_a_proposal_the_draws_cannot_reach_is_scored_and_followed(kind):
    # A search this narrow around the box's centre never comes near TARGET; a proposal at
    # TARGET is scored in every iteration, beside one out of the box (clamped into it).
    cfg = PlannerConfig(
        kind=kind, horizon=5, candidates=50, iterations=3, elites=1, init_std=0.01, min_std=0.01
    )
    planner = SamplingPlanner(cfg, 2)
    scored = []

    def cost(actions):
        scored.append(actions[1:3].clone())
        return quadratic(actions)

    torch.manual_seed(0)
    assert planner.plan(quadratic).cost > 1.0
    guided = planner.plan(cost, proposals=torch.stack([TARGET, 3 * TARGET]))
    assert guided.cost == pytest.approx(0.0, abs=1e-6)
    assert (guided.mean - TARGET).abs().max() < 0.1
    assert len(scored) == 3
    for proposals in scored:
        assert torch.equal(proposals[0], TARGET)
        assert torch.equal(proposals[1], (3 * TARGET).clamp(-1, 1))
    with pytest.raises(ValueError, match="invalid proposals="):
        planner.plan(quadratic, proposals=TARGET[None, :3])


@pytest.mark.parametrize("keep", [True, False])
def test_kept_elites_make_each_iteration_at_least_as_good_as_the_last(keep):
    """A narrow valley the elites' mean misses: with the elites carried over, the best
    candidate of an iteration is never lost (the cost is deterministic); without them, a
    refit around a worse mean loses it."""

    def valley(actions):  # minimum 0 at a0 = 0.9, a1 = -0.9; a0 + a1 must stay ~0
        a0, a1 = actions[:, 0, 0], actions[:, 1, 0]
        return 50 * (a0 + a1).pow(2) + (a0 - 0.9).pow(2)

    bests = []

    def cost(actions):
        c = valley(actions)
        bests.append(float(c.min()))
        return c

    cfg = PlannerConfig(horizon=2, candidates=60, iterations=12, elites=12, keep_elites=keep)
    torch.manual_seed(0)
    SamplingPlanner(cfg, 1).plan(cost)
    steps = [b - a for a, b in itertools.pairwise(bests)]
    if keep:
        assert max(steps) <= 0.0
    else:
        assert max(steps) > 0.0


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_non_finite_costs_count_as_worst(kind):
    def cost(actions):
        c = quadratic(actions)
        return torch.where(actions[:, 0, 0] > 0.8, torch.full_like(c, float("nan")), c)

    cfg = PlannerConfig(kind=kind, horizon=5, candidates=200, iterations=4, elites=20)
    torch.manual_seed(0)
    plan = SamplingPlanner(cfg, 2).plan(cost)
    assert torch.isfinite(plan.mean).all() and plan.cost < 1.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "icem"}, "planner"),
        ({"horizon": 0}, "horizon"),
        ({"elites": 2000}, "elites"),
        ({"momentum": 1.0}, "momentum"),
        ({"min_std": 2.0}, "min_std"),
        ({"noise_beta": -1.0}, "noise_beta"),
    ],
)
def test_invalid_settings_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"invalid {field}="):
        PlannerConfig(**changes)


def test_imagining_the_whole_horizon_at_once_matches_step_by_step():
    """The ensemble's one-call rollout against the generic loop of ``Imaginer.step``."""
    from agents.active_inference.imagination import EnsembleImaginer, Needs, imagine, stack
    from generative.base import DataSpec
    from world_models.ensemble import EnsembleConfig, EnsembleDynamics
    from world_models.state import LatentState

    torch.manual_seed(0)
    cfg = EnsembleConfig(members=5, hidden=16, layers=3, head=(8,))
    model = EnsembleDynamics(cfg, DataSpec("vector", (3,)), action_dim=2)
    model.ends_seen.fill_(True)  # read the continuation head
    imaginer = EnsembleImaginer(model)
    start = LatentState(torch.zeros(1, 5), torch.randn(1, 3))
    actions = torch.rand(4, 6, 2) * 2 - 1
    needs = Needs(obs=True, reward=True, members=True, outcomes=True, entropy=True)

    def score(step):
        return -step.obs.pow(2).sum(-1)

    with torch.no_grad():
        torch.manual_seed(1)
        fast = imagine(imaginer, start, actions, score, particles=5, needs=needs)
        torch.manual_seed(1)
        state, acts, steps = start.map(lambda t: t.expand(20, -1)), actions.repeat(5, 1, 1), []
        for t in range(6):
            step = imaginer.step(state, acts[:, t], Needs(obs=True, reward=True, entropy=True))
            state = step.state
            steps.append((score(step), step))
        ref = stack(steps, 4, keep_outcomes=True, members_from_particles=True)
    for name in ("log_preference", "obs_entropy", "reward", "cont", "outcomes", "member_mean"):
        torch.testing.assert_close(getattr(fast, name), getattr(ref, name), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.member_std, ref.member_std, rtol=1e-5, atol=1e-5)
    lean = imagine(imaginer, start, actions, score, particles=5, needs=Needs(obs=False))
    assert lean.obs_entropy is None and lean.reward is None and lean.shape == (4, 5, 6)
    assert torch.equal(lean.actions, actions[:, None])  # for the action prior


def test_the_tuned_inverted_pendulum_planner_balances_the_real_pendulum():
    """CEM with the agent's inverted-pendulum settings and the task's preference, scoring a
    linear model of the task's dynamics (``benchmarks/bench_planner.py``), holds the real
    MuJoCo pole up for a whole episode; with the settings before (a 15-step horizon, the
    default search, no cart-speed preference) the cart drifts into the rail's end and the
    pole falls."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    import bench_planner

    model = bench_planner.fit_linear_model(samples=1500)
    task = get_task("inverted-pendulum")
    tuned = bench_planner.run_variant(task, model, {}, episodes=1)
    assert tuned["return"] == 1000 and tuned["cart_reach"] < 0.9, tuned
    before = bench_planner.with_preference(task, bench_planner.EARLIER_CART)
    earlier = {"horizon": 15, **bench_planner.EARLIER_SEARCH}
    old = bench_planner.run_variant(before, model, earlier, episodes=1)
    assert old["return"] < 500, old
