import torch

from generative.base import DataSpec
from world_models.ensemble import EnsembleConfig, EnsembleDynamics
from world_models.replay import Chunk
from world_models.state import LatentState


def _model(**changes) -> EnsembleDynamics:
    cfg = EnsembleConfig(**{"members": 5, "hidden": 32, "layers": 2, "head": (16,), **changes})
    return EnsembleDynamics(cfg, DataSpec("vector", (1,)), action_dim=1)


def _chunk(x: torch.Tensor) -> Chunk:
    """Transitions of ``o' = sin(3 o)`` from observations ``x`` ``(N,)``, zero actions."""
    obs = torch.stack([x, torch.sin(3 * x)], 1)[..., None]  # (N, 2, 1)
    n = x.shape[0]
    return Chunk(
        obs=obs,
        action=torch.zeros(n, 2, 1),
        reward=torch.zeros(n, 2),
        terminated=torch.zeros(n, 2, dtype=torch.bool),
        truncated=torch.zeros(n, 2, dtype=torch.bool),
        is_first=torch.tensor([[True, False]]).expand(n, 2),
    )


def test_members_differ():
    torch.manual_seed(0)
    model = _model()
    mean, _ = model.predict(torch.randn(8, 1), torch.zeros(8, 1))
    assert mean.shape == (5, 8, 1)
    assert (mean.std(0) > 1e-4).all()  # independent initialisations give distinct members


def test_disagreement_shrinks_where_data_is_dense():
    torch.manual_seed(0)
    model = _model()
    data = _chunk(torch.rand(512) - 0.5)  # observations only in [-0.5, 0.5]
    model.fit_normalizer(data)
    opt = model.optimizers(3e-3)
    for _ in range(300):
        model.train_step(data[torch.randint(0, 512, (128,))], opt)

    def disagreement(x: torch.Tensor) -> float:
        deter = torch.stack([x, torch.zeros_like(x)], -1)
        with torch.no_grad():
            return float(model.disagreement(LatentState(deter, x[:, None])).mean())

    dense, far = disagreement(torch.linspace(-0.4, 0.4, 50)), disagreement(torch.linspace(2, 3, 50))
    assert dense < far / 10, (dense, far)


def test_trajectory_sampling_keeps_or_redraws_members():
    torch.manual_seed(0)
    model = _model(members=4)
    start = LatentState(torch.zeros(10, 2), torch.linspace(-1, 1, 10)[:, None])
    actions = torch.zeros(10, 6, 1)
    mean = model.imagine(start, actions, sample=False)
    assert mean.shape == (10, 6) and mean.stats.shape == (10, 6, 2)
    for propagation in ("ts1", "tsinf"):
        states = model.imagine(start, actions, propagation=propagation)
        assert states.shape == (10, 6) and torch.isfinite(states.stoch).all()
    # With TS1 each particle follows one member: with zero noise its rollout is that member's.
    model.net.max_logvar.data.fill_(-30.0)
    model.net.min_logvar.data.fill_(-40.0)
    torch.manual_seed(1)
    rollout = model.imagine(start, actions, propagation="ts1").stoch[..., 0]  # (10, 6)
    members = []
    for m in range(4):
        obs, out = start.stoch, []
        for _ in range(6):
            obs = model.predict(obs, torch.zeros(10, 1))[0][m]
            out.append(obs[:, 0])
        members.append(torch.stack(out, 1))
    match = torch.stack([(rollout - own).abs().amax(1) < 1e-5 for own in members])  # (4, 10)
    assert match.any(0).all()


def test_normaliser_statistics_are_saved_with_the_weights():
    model = _model()
    model.fit_normalizer(_chunk(torch.rand(64) * 4 + 10))
    copy = _model()
    copy.load_state_dict(model.state_dict())
    for name in ("obs_mean", "obs_std", "delta_mean", "delta_std"):
        assert torch.equal(getattr(copy, name), getattr(model, name)) and name in model.state_dict()
    assert float(copy.obs_mean) > 5  # the mean of o in [10, 14] and sin(3o) in [-1, 1]
