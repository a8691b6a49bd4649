import torch

from generative.base import DataSpec
from world_models.ensemble import EnsembleConfig, EnsembleDynamics
from world_models.priors import LatentPrior, LatentPriorConfig, goal_prior


def _two_blobs(n: int = 400) -> torch.Tensor:
    centres = torch.tensor([[1.5, 0.0], [-1.5, 0.5]])
    return centres[torch.arange(n) % 2] + 0.3 * torch.randn(n, 2)


def test_flow_prior_density_integrates_to_one_on_a_grid():
    torch.manual_seed(0)
    prior = LatentPrior(LatentPriorConfig(kind="flow", hidden=32, layers=4, steps=200), dim=2)
    prior.fit(_two_blobs())
    axis = torch.linspace(-6, 6, 241)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = prior.log_prob(grid).exp()
    cell = float(axis[1] - axis[0]) ** 2
    assert abs(float(density.sum()) * cell - 1.0) < 0.05
    # ... and it has learned where the data is.
    with torch.no_grad():
        on, off = (
            prior.log_prob(torch.tensor([[1.5, 0.0]])),
            prior.log_prob(torch.tensor([[0.0, -3.0]])),
        )
    assert float(on) > float(off) + 3


def test_priors_score_batches_of_any_shape_and_sample():
    torch.manual_seed(0)
    for kind in ("flow", "diffusion", "gaussian"):
        cfg = LatentPriorConfig(kind=kind, hidden=8, layers=1, timesteps=4, steps=3, batch_size=8)
        prior = LatentPrior(cfg, dim=3)
        prior.fit(torch.randn(20, 3))
        with torch.no_grad():
            assert prior.log_prob(torch.randn(4, 5, 3)).shape == (4, 5)
        assert prior.sample(6).shape == (6, 3)


def test_goal_prior_prefers_states_near_the_goals():
    torch.manual_seed(0)
    model = EnsembleDynamics(EnsembleConfig(**EnsembleDynamics.SMOKE), DataSpec("vector", (2,)), 1)
    goals = torch.tensor([0.5, -0.5]) + 0.05 * torch.randn(32, 2)
    prior = goal_prior(model, goals, kind="gaussian")
    with torch.no_grad():
        near, far = prior.log_prob(torch.tensor([[0.5, -0.5], [3.0, 3.0]]))
    assert float(near) > float(far)
