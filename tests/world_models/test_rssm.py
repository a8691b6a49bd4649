import math

import pytest
import torch

from generative.base import DataSpec
from world_models.rssm import RSSM, RSSMConfig, diagonal_gaussian_log_prob, kl_balanced
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


def test_filtering_restarts_where_an_episode_starts_mid_chunk():
    """A chunk that runs from one episode into the next (replay ``across_episodes``) filters
    the second exactly as a chunk of its own would, and so trains on the same loss."""
    model = _model()
    obs, action = torch.randn(2, 7, 5), torch.randn(2, 7, 2)
    action[:, 4] = 0  # an episode's first row holds a zero action
    is_first = torch.zeros(2, 7, dtype=torch.bool)
    is_first[:, [0, 4]] = True
    joined = model.observe(obs, action, sample=False, is_first=is_first)
    alone = model.observe(obs[:, 4:], action[:, 4:], sample=False)
    assert torch.allclose(joined.features[:, 4:], alone.features, atol=1e-6)
    assert torch.allclose(
        joined.features[:, :4], model.observe(obs[:, :4], action[:, :4], sample=False).features
    )
    # Without the flag the second episode inherits the first one's memory.
    carried = model.observe(obs, action, sample=False)
    assert not torch.allclose(carried.features[:, 4:], alone.features, atol=1e-3)


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


# -- the diffusion prior ----------------------------------------------------------------------
TINY_DIFFUSION = {"stoch_prior": "diffusion", "diffusion_steps": 6, "diffusion_hidden": 16}


@pytest.mark.parametrize("stoch_prior", ["flow", "diffusion"])
def test_learned_priors_observe_and_imagine_shapes(stoch_prior):
    torch.manual_seed(0)
    model = _model(stoch_prior=stoch_prior, flow_hidden=8, diffusion_hidden=16)
    b, t, h = 3, 5, 4
    obs, action = torch.randn(b, t, 5), torch.randn(b, t, 2)
    states = model.observe(obs, action)
    assert states.shape == (b, t) and states.stats.shape == (b, t, 6)
    prior = model.filter(obs, action)[1]  # the prior's draws through the flow / the chain
    assert prior.shape == (b, t) and prior.stats.shape == (b, t, 6)
    actions = torch.randn(b, h, 2)
    for sample in (True, False):
        future = model.imagine(states[:, -1], actions, sample=sample)
        assert future.shape == (b, h) and future.stats.shape == (b, h, 6)
        assert torch.isfinite(future.stoch).all()
        assert model.decode(future).shape == (b, h, 5) and model.reward(future).shape == (b, h)
    # sample=False is deterministic, so open-loop evaluation along the mode works.
    again = model.imagine(states[:, -1], actions, sample=False)
    assert torch.equal(again.stoch, model.imagine(states[:, -1], actions, sample=False).stoch)
    pred, reward = model.open_loop(obs, action, context=2)
    assert pred.shape == (b, t - 2, 5) and reward.shape == (b, t - 2)


def test_new_diffusion_prior_is_its_gaussian():
    """The zero-initialised v-prediction denoiser is exact for N(0, I) (see DiffusionPrior), so
    a new prior is N(mean, std^2) of its stats: the deterministic chain stays at the mean,
    draws have its moments, and the bound matches its log-density in expectation."""
    torch.manual_seed(0)
    model = _model(**TINY_DIFFUSION)
    n = 4000
    state = model.initial(n)
    action = torch.randn(1, 2).expand(n, 2)  # one h, many draws
    with torch.no_grad():
        mode = model.img_step(state, action, sample=False)
        draws = model.img_step(state, action, sample=True)
    mean, std = draws.stats[0].chunk(2, -1)
    assert torch.allclose(mode.stoch, mode.stats[:, :3], atol=1e-6)
    # 4,000 draws: standard errors of about 0.016 std on the mean and 0.011 std on the std
    assert torch.allclose(draws.stoch.mean(0), mean, atol=0.07 * float(std.max()))
    assert torch.allclose(draws.stoch.std(0), std, rtol=0.05)
    # Points off the Gaussian (twice as wide): the bound is still exact in expectation.
    s = mean + 2 * std * torch.randn(n, 3)
    exact = torch.distributions.Normal(mean, std).log_prob(s).sum(-1)
    for terms in (0, 1):  # the full bound and a one-term estimate of it
        with torch.no_grad():
            bound = model.diffusion_prior_log_prob(s, draws.stats, draws.deter, terms=terms)
        gap = bound - exact
        assert abs(float(gap.mean())) < 4 * float(gap.std()) / n**0.5


def test_diffusion_kl_balancing_matches_its_formula():
    """dyn = log q - log p at sg(s) trains the prior (its stats, h and the denoiser); rep
    trains the posterior through s with the prior frozen: each gets its share of the gradient
    of the one-sample estimate clipped at the free bits, computed here with the same draws."""
    torch.manual_seed(0)
    model = _model(**TINY_DIFFUSION)
    n = 32
    # A trained-looking denoiser: a new one has a zero output layer, hence no weight gradients.
    with torch.no_grad():
        for w in model.prior_diffusion.parameters():
            w.add_(0.1 * torch.randn_like(w))
    q = torch.cat([torch.randn(n, 3), torch.rand(n, 3) + 0.2], -1).requires_grad_()
    p = torch.cat([torch.randn(n, 3), torch.rand(n, 3) + 0.2], -1).requires_grad_()
    h = torch.randn(n, 12).requires_grad_()
    eps = torch.randn(n, 3)
    denoiser = list(model.prior_diffusion.parameters())
    alpha, free = model.cfg.kl_balance, model.cfg.free_nats

    def states():
        s = q[:, :3] + q[:, 3:] * eps
        return LatentState(h, s, q), LatentState(h, torch.zeros_like(s), p)

    torch.manual_seed(1)
    post, prior = states()
    loss, kl = model._sample_kl(post, prior, terms=2)
    grads = torch.autograd.grad(loss, [q, p, h, *denoiser])

    torch.manual_seed(1)  # the same draws: the two bounds in the same order
    plain = []
    for _ in range(2):
        post, prior = states()
        log_q = diagonal_gaussian_log_prob(post.stoch, q)
        log_p = model.diffusion_prior_log_prob(post.stoch, p, h, terms=2)
        plain.append(log_q - log_p)
    assert torch.allclose(kl, plain[0].detach())
    below = plain[0].detach() < free
    assert below.any() and not below.all()  # free bits: some steps pay nothing
    dyn, rep = (estimate.clamp_min(free).mean() for estimate in plain)
    expected = alpha * dyn + (1 - alpha) * rep
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    ref_dyn = torch.autograd.grad(dyn, [p, h, *denoiser])
    ref_rep = torch.autograd.grad(rep, q)
    assert torch.allclose(grads[0], (1 - alpha) * ref_rep[0], rtol=1e-4, atol=1e-7)
    for got, ref in zip(grads[1:], ref_dyn, strict=True):
        assert torch.allclose(got, alpha * ref, rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in grads[3:])


def test_diffusion_prior_loss_decreases(point_mass_data):
    torch.manual_seed(0)
    data = point_mass_data[0]
    model = RSSM(RSSMConfig(**{**SIZES, **TINY_DIFFUSION}), DataSpec("vector", (4,)), 2)
    model.fit_normalizer(data.transitions())
    loss, metrics = model.loss(data.sample(8, 6))
    loss.backward()
    assert torch.isfinite(loss) and all(math.isfinite(v) for v in metrics.values())
    # Gradients reach the denoiser and the posterior (the test above checks each one's share).
    assert model.prior_diffusion.diffusion.net.out.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in model.obs_out.parameters())
    opt = model.optimizers(3e-3)
    losses = [model.train_step(data.sample(8, 6), opt)["losses/total"] for _ in range(200)]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-20:]) < sum(losses[:20])


def test_diffusion_prior_fits_a_bimodal_prior_the_gaussian_cannot():
    """s | h = ±1 + N(0, 0.05^2) in each dimension, the sign a coin flip. The best Gaussian,
    N(0, ~1), scores about -1.42 nats a dimension and puts 24% of its draws within 0.3 of 0;
    the diffusion prior, fitted alone, puts its draws near ±1 and scores far better."""
    torch.manual_seed(0)
    model = _model(stoch=2, stoch_prior="diffusion", diffusion_steps=10, diffusion_hidden=64)
    prior_parts = [model.img_in, model.gru, model.img_out, model.prior_diffusion]
    opt = torch.optim.Adam([p for part in prior_parts for p in part.parameters()], lr=3e-3)

    def pairs(n: int):
        deter, stats = model._transition(model.initial(n), torch.randn(n, 2))
        s = torch.where(torch.rand(n, 2) < 0.5, -1.0, 1.0) + 0.05 * torch.randn(n, 2)
        return s, stats, deter

    for _ in range(250):
        s, stats, deter = pairs(256)
        loss = -model.diffusion_prior_log_prob(s, stats, deter, terms=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s, stats, deter = pairs(2000)
        bound = model.diffusion_prior_log_prob(s, stats, deter).mean()
        draws = model.img_step(model.initial(4000), torch.randn(4000, 2)).stoch
    assert float(bound) > 2 * -1.42 + 1.0  # seeds 0-5 gave -0.08 to 0.14
    near_modes = ((draws.abs() - 1).abs() < 0.35).float().mean(0)
    near_zero = (draws.abs() < 0.3).float().mean(0)
    positive = (draws > 0).float().mean(0)
    # Seeds 0-5: 98-99% of the draws within 0.35 of a mode, under 1% within 0.3 of 0.
    assert (near_modes > 0.9).all() and (near_zero < 0.05).all()
    assert ((positive > 0.35) & (positive < 0.65)).all()  # both modes, not one


def test_diffusion_elbo_sums_the_whole_bound(point_mass_data):
    """elbo() equals the ELBO assembled by hand with all bound terms (same draws), is
    repeatable under a seed, and differs from the training estimate's few terms."""
    torch.manual_seed(0)
    data = point_mass_data[1]
    model = RSSM(RSSMConfig(**{**SIZES, **TINY_DIFFUSION}), DataSpec("vector", (4,)), 2)
    model.fit_normalizer(data.transitions())
    with torch.no_grad():  # a trained-looking denoiser, so the bound terms differ
        for w in model.prior_diffusion.parameters():
            w.add_(0.1 * torch.randn_like(w))
    batch = data.sample(5, 6)

    def by_hand(terms: int) -> torch.Tensor:
        with torch.no_grad():
            post, prior = model.filter(batch.obs, batch.action, draw_prior=False)
            recon = model._decode_raw(post.features)
            recon_nll = model.observation_nll(recon, model.preprocess(batch.obs))
            log_q = diagonal_gaussian_log_prob(post.stoch, post.stats)
            log_p = model.diffusion_prior_log_prob(
                post.stoch, prior.stats, prior.deter, terms=terms
            )
        return -(recon_nll + log_q - log_p).mean(1) - model.obs_std.log().sum()

    torch.manual_seed(7)
    elbo = model.elbo(batch)
    torch.manual_seed(7)
    again = model.elbo(batch)
    torch.manual_seed(7)
    full = by_hand(terms=0)
    torch.manual_seed(7)
    estimate = by_hand(terms=model.cfg.diffusion_terms)
    assert elbo.shape == (5,) and torch.isfinite(elbo).all()
    assert torch.equal(elbo, again)
    assert torch.allclose(elbo, full, atol=1e-5)
    assert not torch.allclose(elbo, estimate, atol=1e-3)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"latent": "categorical", "stoch_prior": "diffusion"}, "stoch_prior"),
        ({"stoch_prior": "diffusion", "diffusion_steps": 0}, "diffusion_steps"),
        ({"stoch_prior": "diffusion", "diffusion_hidden": 0}, "diffusion_hidden"),
        ({"stoch_prior": "diffusion", "diffusion_terms": -1}, "diffusion_terms"),
        ({"stoch_prior": "score"}, "stoch_prior"),
    ],
)
def test_invalid_prior_settings_name_the_field(changes, field):
    with pytest.raises(ValueError, match=f"invalid {field}="):
        RSSMConfig(**changes)
