"""CEM and MPPI on objectives with a known optimum."""

import pytest
import torch

from agents.active_inference.planner import PlannerConfig, SamplingPlanner

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
    ],
)
def test_invalid_settings_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"invalid {field}="):
        PlannerConfig(**changes)
