import dataclasses

import pytest
import torch

from generative.base import DataSpec
from world_models.base import imagination_precision
from world_models.ensemble import FEW_ROWS, EnsembleConfig, EnsembleDynamics
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


def test_clamped_imagined_observations_still_pass_gradients():
    model = _model()
    model.obs_low.fill_(-1.0)
    model.obs_high.fill_(1.0)
    obs = torch.tensor([[-3.0], [0.5], [2.0]], requires_grad=True)
    clamped = model.clamp_observation(obs)
    assert clamped.detach().flatten().tolist() == [-1.0, 0.5, 1.0]
    # A policy past the range learns which way leads back (a plain clamp's gradient is 0).
    (clamped * torch.tensor([[1.0], [2.0], [3.0]])).sum().backward()
    assert obs.grad.flatten().tolist() == [1.0, 2.0, 3.0]


def test_continuation_is_one_until_training_sees_an_episode_end():
    """Planning on tasks that never end skips the continuation head; once a training batch
    holds an end, the head is read (and learns the end)."""
    torch.manual_seed(0)
    model = _model()
    data = _chunk(torch.rand(256) - 0.5)
    model.fit_normalizer(data)
    opt = model.optimizers(3e-3)
    states = LatentState(torch.randn(7, 2), torch.randn(7, 1))
    for _ in range(20):
        model.train_step(data, opt)
    assert not bool(model.ends_seen)
    assert torch.equal(model.continuation(states), torch.ones(7))
    ending = dataclasses.replace(data, terminated=data.obs[..., 0] > 0.3)  # sin(3 o) > 0.3
    for _ in range(200):
        model.train_step(ending, opt)
    assert bool(model.ends_seen)
    with torch.no_grad():  # the heads read the transition input [o, a]
        ends = model.continuation(LatentState(torch.tensor([[0.45, 0.0]]), torch.zeros(1, 1)))
        goes = model.continuation(LatentState(torch.tensor([[-0.3, 0.0]]), torch.zeros(1, 1)))
    assert float(ends) < 0.5 < float(goes)
    copy = _model()
    copy.load_state_dict(model.state_dict())
    assert bool(copy.ends_seen)
    old = {k: v for k, v in _model().state_dict().items() if k != "ends_seen"}
    copy.load_state_dict(old)  # a checkpoint from before the flag: its head is read
    assert bool(copy.ends_seen)


def _trained_like(model: EnsembleDynamics) -> EnsembleDynamics:
    """Non-trivial statistics and log-variance bounds, as after fitting."""
    model.fit_normalizer(_chunk(torch.rand(64) * 4 - 2))
    model.obs_low.fill_(-1.5)  # some imagined observations are clipped
    return model


@pytest.mark.parametrize("rows", [FEW_ROWS, FEW_ROWS + 1])  # row-major, column-major
def test_column_major_forward_matches_the_row_major_one(rows):
    torch.manual_seed(0)
    net = _model(layers=3).net
    x = torch.randn(5, rows, 2)
    mean, logvar = net(x)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            raw = net.forward_columns(x.mT.contiguous(), net.workspace(rows, x))
            fast_mean, fast_logvar = raw.mT.chunk(2, -1)
            # Float tolerance: the products sum in another order.
            torch.testing.assert_close(fast_mean, mean, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net.bound(fast_logvar), logvar, rtol=1e-5, atol=1e-6)


def _reference_imagine(model, start, actions, propagation, sample=True):
    """The straightforward loop: standardise, every network call row-major, gather."""
    n, m = actions.shape[0], model.members
    per_member = -(-n // m)
    obs, order, out = start.stoch, None, []
    for action in actions.unbind(1):
        deter = torch.cat([obs, action], -1)
        x = torch.cat([(obs - model.obs_mean) / model.obs_std, action], -1)
        if not sample:
            mean, logvar = model.net(x.expand(m, *x.shape))
            mean, std = mean.mean(0), (0.5 * logvar).exp().mean(0)
            delta = mean
        else:
            if order is None or propagation == "tsinf":
                perm = torch.randperm(per_member * m)
                order, inverse = perm % n, perm.argsort()[:n]
            mean, logvar = model.net(x[order].view(m, per_member, -1))
            mean = mean.reshape(m * per_member, -1)[inverse]
            std = (0.5 * logvar).exp().reshape(m * per_member, -1)[inverse]
            delta = mean + std * torch.randn_like(std)
        raw = obs + delta * model.delta_std + model.delta_mean
        next_obs = torch.maximum(torch.minimum(raw, model.obs_high), model.obs_low)
        stats = torch.cat(
            [obs + mean * model.delta_std + model.delta_mean, std * model.delta_std], -1
        )
        out.append(LatentState(deter, next_obs, stats))
        obs = next_obs
    return LatentState.stack(out)


def test_imagine_matches_a_straightforward_reference():
    model = _trained_like(_model(members=4, layers=3))
    start = LatentState(torch.zeros(10, 2), torch.linspace(-1, 1, 10)[:, None])
    actions = torch.randn(10, 6, 1)  # 10 particles: member blocks of 3 with padding
    for grad in (True, False):
        for propagation, sample in (("ts1", True), ("tsinf", True), ("ts1", False)):
            with torch.set_grad_enabled(grad):
                torch.manual_seed(1)
                fast = model.imagine(start, actions, sample=sample, propagation=propagation)
                torch.manual_seed(1)
                ref = _reference_imagine(model, start, actions, propagation, sample)
            for name in ("deter", "stoch", "stats"):
                a, b = getattr(fast, name), getattr(ref, name)
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        assert (model.imagine(start, actions).stoch == -1.5).any()  # the clipping was exercised


def test_rollout_in_blocks_matches_step_by_step_predictions():
    model = _trained_like(_model(members=4, layers=3))
    obs, actions = torch.linspace(-1, 1, 10)[:, None], torch.randn(10, 6, 1)
    with torch.no_grad():
        torch.manual_seed(2)
        states, (mean, std) = model.rollout_blocks(obs, actions)
        torch.manual_seed(2)
        o = obs
        for t in range(6):
            ref_mean, ref_std = model.predict_blocks(o, actions[:, t])
            o = model.clamp_observation(ref_mean + ref_std * torch.randn_like(ref_std))
            torch.testing.assert_close(mean[:, t], ref_mean, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(std[:, t], ref_std, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(states.stoch[:, t], o, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(states.deter[:, t, 1:], actions[:, t])


@pytest.mark.parametrize("per_member", [FEW_ROWS + 1, FEW_ROWS])
def test_bfloat16_imagination_stays_close_to_float32_and_returns_float32(per_member):
    model = _trained_like(_model(members=4, layers=3)).eval()
    rows = 4 * per_member
    obs, actions = torch.linspace(-1, 1, rows)[:, None], torch.randn(rows, 6, 1)
    outs = {}
    for precision in ("float32", "bfloat16"):
        with torch.no_grad(), imagination_precision(torch.device("cpu"), precision):
            torch.manual_seed(2)
            states, (mean, std) = model.rollout_blocks(obs, actions)
            outs[precision] = states.stoch, mean, std, model.reward(states)
    for i, (full, low) in enumerate(zip(outs["float32"], outs["bfloat16"], strict=True)):
        assert low.dtype == torch.float32
        if per_member <= FEW_ROWS and i < 3:  # dynamics on too few rows to pay for bfloat16
            assert torch.equal(full, low)
        else:
            assert not torch.equal(full, low)  # the products did run in bfloat16
        # bfloat16 keeps 8 significant bits: relative rounding of about 0.4% per product.
        torch.testing.assert_close(low, full, rtol=0.05, atol=0.05)


def test_imagination_precision_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"precision='half'.*auto, float32, bfloat16"):
        imagination_precision(torch.device("cpu"), "half")


def test_an_episode_start_mid_chunk_is_its_own_previous_state():
    model = _model()
    obs, action = torch.randn(2, 4, 1), torch.randn(2, 4, 1)
    is_first = torch.tensor([True, False, True, False]).expand(2, 4)
    states = model.observe(obs, action, is_first=is_first)
    previous = states.deter[..., :1]
    assert torch.equal(previous[:, 2], obs[:, 2]) and torch.equal(previous[:, 3], obs[:, 2])
    assert torch.equal(states.deter[..., 1:], action)
