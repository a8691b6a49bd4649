import pytest
import torch

from generative.base import DataSpec
from world_models.rssm import RSSM, RSSMConfig, kl_balanced
from world_models.state import LatentState

SIZES = {"deter": 12, "stoch": 3, "classes": 4, "hidden": 10, "embed": 8, "mlp": (16,)}


def _model(latent: str = "gaussian", pixels: bool = False, **changes) -> RSSM:
    spec = DataSpec("image", (3, 16, 16), 256) if pixels else DataSpec("vector", (5,))
    cfg = RSSMConfig(**{**SIZES, "latent": latent, "channels": (4, 4), **changes})
    return RSSM(cfg, spec, action_dim=2)


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
@pytest.mark.parametrize("pixels", [False, True])
def test_observe_then_imagine_shapes(latent, pixels):
    model = _model(latent, pixels)
    b, t, h = 3, 6, 4
    obs = (
        torch.randint(0, 256, (b, t, 3, 16, 16), dtype=torch.uint8)
        if pixels
        else torch.randn(b, t, 5)
    )
    states = model.observe(obs, torch.randn(b, t, 2))
    s = 3 * 4 if latent == "categorical" else 3
    assert (
        states.shape == (b, t)
        and states.deter.shape == (b, t, 12)
        and states.stoch.shape == (b, t, s)
    )
    future = model.imagine(states[:, -1], torch.randn(b, h, 2))
    assert future.shape == (b, h) and future.features.shape == (b, h, 12 + s)
    assert model.decode(future).shape == (b, h, *model.spec.shape)
    assert model.reward(future).shape == (b, h) and model.continuation(future).shape == (b, h)
    # Hundreds of candidates from one state: repeat it, imagine all at once.
    many = model.imagine(states[:1, -1].repeat_interleave(50), torch.randn(50, h, 2))
    assert many.shape == (50, h)


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_kl_is_zero_when_posterior_equals_prior(latent):
    model = _model(latent)
    prior = model.img_step(model.initial(7), torch.randn(7, 2))
    assert torch.allclose(model.kl(prior.stats, prior.stats), torch.zeros(7), atol=1e-6)
    loss, kl = kl_balanced(model.kl, prior.stats, prior.stats, alpha=0.8, free_nats=0.0)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6) and torch.allclose(
        kl, torch.zeros(7), atol=1e-6
    )


def test_gaussian_kl_matches_torch_distributions():
    model = _model()
    q = torch.cat([torch.randn(5, 3), torch.rand(5, 3) + 0.1], -1)
    p = torch.cat([torch.randn(5, 3), torch.rand(5, 3) + 0.1], -1)
    dist = torch.distributions
    expected = dist.kl_divergence(
        dist.Normal(q[:, :3], q[:, 3:]), dist.Normal(p[:, :3], p[:, 3:])
    ).sum(-1)
    assert torch.allclose(model.kl(q, p), expected, atol=1e-5)


def test_kl_balancing_matches_its_formula():
    model = _model()
    torch.manual_seed(0)
    q = torch.cat([torch.randn(64, 3), torch.rand(64, 3) + 0.2], -1).requires_grad_()
    p = torch.cat([torch.randn(64, 3), torch.rand(64, 3) + 0.2], -1).requires_grad_()
    plain = model.kl(q, p)
    alpha, free = 0.8, float(plain.detach().median())  # half the steps fall below the free bits
    loss, kl = kl_balanced(model.kl, q, p, alpha, free)
    # In value: alpha * mean(max(free, KL)) + (1 - alpha) * mean(max(free, KL)).
    assert float(loss.detach()) == pytest.approx(float(plain.detach().clamp_min(free).mean()))
    assert torch.allclose(kl, plain.detach())
    # In gradient: the prior gets alpha of the clipped KL's gradient, the posterior the rest.
    grad_q, grad_p = torch.autograd.grad(loss, (q, p))
    ref_q, ref_p = torch.autograd.grad(plain.clamp_min(free).mean(), (q, p))
    assert torch.allclose(grad_p, alpha * ref_p, atol=1e-6)
    assert torch.allclose(grad_q, (1 - alpha) * ref_q, atol=1e-6)
    # Free bits: steps whose KL is below `free` get no gradient at all.
    below = plain.detach() < free
    assert below.any() and (grad_p[below] == 0).all() and (grad_q[below] == 0).all()


def test_categorical_samples_are_one_hot_with_straight_through_gradients():
    model = _model("categorical")
    logits = torch.randn(5, 12, requires_grad=True)
    stoch = model._draw(model._stats(logits), sample=True)
    groups = stoch.detach().view(5, 3, 4)
    # Forward values are exact one-hots (up to the rounding of one_hot + p - p).
    assert torch.allclose(groups.sum(-1), torch.ones(5, 3))
    assert torch.allclose(groups, groups.round(), atol=1e-6)
    stoch.pow(2).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_latent_state_helpers():
    s = LatentState(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(2, 3, 6))
    assert s[:, -1].shape == (2,) and s.flatten().shape == (6,)
    assert LatentState.stack([s[:, 0], s[:, 1]]).shape == (2, 2)
    assert s[:, 0].repeat_interleave(3).shape == (6,)


def test_flow_prior_starts_as_the_gaussian_and_trains(point_mass_data):
    torch.manual_seed(0)
    model = _model(stoch_prior="flow", flow_layers=2, flow_hidden=8)
    prior = model.img_step(model.initial(6), torch.randn(6, 2))
    mean, std = prior.stats.chunk(2, -1)
    # A new RealNVP is the identity, so the flow prior is its Gaussian base.
    expected = torch.distributions.Normal(mean, std).log_prob(prior.stoch).sum(-1)
    assert torch.allclose(model.flow_prior_log_prob(prior.stoch, prior.stats), expected, atol=1e-5)

    data = point_mass_data[0]
    model = RSSM(
        RSSMConfig(**{**SIZES, "stoch_prior": "flow", "flow_layers": 2}),
        DataSpec("vector", (4,)),
        2,
    )
    model.fit_normalizer(data.transitions())
    opt = model.optimizers(3e-3)
    losses = [model.train_step(data.sample(8, 6), opt)["losses/total"] for _ in range(60)]
    assert sum(losses[-10:]) < sum(losses[:10])
    future = model.imagine(model.initial(3), torch.randn(3, 4, 2))
    assert future.shape == (3, 4) and torch.isfinite(future.stoch).all()
