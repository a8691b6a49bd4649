"""Diffusion: schedules and the forward process, the three parameterisations, DDIM, and the
variational bound (valid, tight with the optimal denoiser, normalised on discrete data,
decreasing with training)."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from generative.base import DataSpec
from generative.data import load_dataset
from generative.density import fit_density
from generative.diffusion.ddpm import DDPM, DDPMConfig
from generative.diffusion.denoisers import MLPDenoiser
from generative.diffusion.density import DiffusionDensity
from generative.diffusion.gaussians import discretized_gaussian_log_likelihood, gaussian_log_density
from generative.diffusion.prediction import PREDICTIONS, to_x0_eps, training_target
from generative.diffusion.process import GaussianDiffusion
from generative.diffusion.schedule import NoiseSchedule, cosine_alpha_bar

TINY_IMAGE = {"timesteps": 10, "channels": 8, "mults": (1, 2)}


def test_schedules_match_their_definitions():
    linear = NoiseSchedule("linear", 1000)
    assert linear.betas[0].item() == pytest.approx(1e-4) and linear.betas[
        -1
    ].item() == pytest.approx(0.02)
    cosine = NoiseSchedule("cosine", 200)
    expected = cosine_alpha_bar(200)[1:].float()
    unclipped = cosine.betas < 0.999
    assert torch.allclose(cosine.alpha_bar[unclipped], expected[unclipped], rtol=1e-4)
    for s in (linear, cosine):
        assert torch.allclose(
            s.alpha_bar, torch.cumprod(1 - s.betas.double(), 0).float(), rtol=1e-5
        )
        assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])
    # rescaled to 10 steps the linear betas would reach 0.02 * 100 = 2: clipped below 1
    short = NoiseSchedule("linear", 10)
    assert short.betas.max() <= 0.999 and torch.all(short.alpha_bar > 0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_forward_process_matches_closed_form(kind):
    """Running x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps step by step gives the
    mean and variance of q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, 1 - alpha_bar_t)."""
    torch.manual_seed(0)
    schedule = NoiseSchedule(kind, 50)
    x0 = torch.tensor([1.5, -0.5]).repeat(20000, 1)
    x = x0.double()
    for t in range(30):
        beta = schedule.betas[t].double()
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn_like(x)
        steps = torch.full((x0.shape[0],), t)
        mean, var = schedule.q_mean_var(x0, steps)
        # 20,000 draws: standard errors about 0.007 on the mean and 0.01 on the variance
        assert torch.allclose(x.mean(0).float(), mean[0], atol=0.03)
        assert torch.allclose(x.var(0).float(), var[0].expand(2), atol=0.04)
    direct = schedule.q_sample(x0, torch.full((x0.shape[0],), 29), torch.randn_like(x0))
    assert torch.allclose(direct.mean(0), x.mean(0).float(), atol=0.05)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_parameterisations_convert_consistently(prediction):
    torch.manual_seed(0)
    x0, eps = torch.randn(8, 3), torch.randn(8, 3)
    alpha_bar = torch.rand(8, 1) * 0.98 + 0.01
    xt = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    target = training_target(prediction, x0, eps, alpha_bar)
    x0_hat, eps_hat = to_x0_eps(prediction, target, xt, alpha_bar)
    assert torch.allclose(x0_hat, x0, atol=1e-5) and torch.allclose(eps_hat, eps, atol=1e-5)


def test_v_prediction_relates_the_other_two():
    x0, eps, ab = torch.randn(5, 2), torch.randn(5, 2), torch.full((5, 1), 0.3)
    v = training_target("v", x0, eps, ab)
    assert torch.allclose(v, ab.sqrt() * eps - (1 - ab).sqrt() * x0)


def test_ddim_with_eta_zero_is_deterministic():
    torch.manual_seed(0)
    model = DDPM(
        DDPMConfig(**TINY_IMAGE, sampler="ddim", sample_steps=4), DataSpec("image", (1, 8, 8), 17)
    )
    noise = torch.randn(3, 1, 8, 8)
    first = model.diffusion.sample_ddim(noise, steps=4, eta=0.0)
    torch.manual_seed(123)  # a different global RNG state must not matter
    second = model.diffusion.sample_ddim(noise, steps=4, eta=0.0)
    assert torch.equal(first, second)
    noisy = model.diffusion.sample_ddim(noise, steps=4, eta=1.0)
    assert not torch.allclose(first, noisy)
    samples = model.sample(3, noise=noise)
    assert samples.shape == (3, 1, 8, 8) and samples.dtype == torch.long


class GaussianOracle(nn.Module):
    """The optimal eps-prediction for N(0, sigma^2 I) data: s x_t / (a^2 sigma^2 + s^2)."""

    def __init__(self, schedule: NoiseSchedule, sigma: float):
        super().__init__()
        self.schedule, self.sigma = schedule, sigma

    def forward(self, x, t):
        ab = self.schedule.alpha_bar[t].view(-1, 1).to(x.dtype)
        return (1 - ab).sqrt() * x / (ab * self.sigma**2 + 1 - ab)


def _gaussian_decoder(x0, mean, var):
    return gaussian_log_density(x0, mean, var).sum(1)


def test_bound_is_tight_with_the_optimal_denoiser_on_unit_gaussian_data():
    """For x_0 ~ N(0, I) the reverse kernels N(mu*(x_t), beta_t) are exact, so the model's joint
    equals q's: every trajectory's log-weight is exactly log N(x_0; 0, I), and the mean of the
    per-step bound matches it."""
    torch.manual_seed(0)
    schedule = NoiseSchedule("cosine", 100)
    diffusion = GaussianDiffusion(GaussianOracle(schedule, 1.0), schedule, "eps", "large").double()
    x0 = torch.randn(2000, 2, dtype=torch.float64)
    exact = Normal(0.0, 1.0).log_prob(x0).sum(1)
    weight = diffusion.trajectory_log_weight(x0, _gaussian_decoder)
    assert torch.allclose(weight, exact, atol=1e-3)
    bound = diffusion.bound(x0, _gaussian_decoder)
    assert (-bound).mean().item() == pytest.approx(exact.mean().item(), abs=0.05)


class ConditionalOracle(nn.Module):
    """The optimal eps-prediction for x_0 | c ~ N(c, I): s (x_t - a c) (as a^2 + s^2 = 1)."""

    def __init__(self, schedule: NoiseSchedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, x, t, cond):
        ab = self.schedule.alpha_bar[t].view(-1, 1).to(x.dtype)
        return (1 - ab).sqrt() * (x - ab.sqrt() * cond)


def test_conditional_diffusion_passes_the_context_to_the_denoiser():
    """x_0 | c ~ N(c, I) with its optimal denoiser: the reverse kernels are exact given c, so
    every trajectory weight is log N(x_0; c, I) (up to the N(0, I) start, while q(x_T | x_0)
    keeps sqrt(alpha_bar_T) c = 0.0025 c), the bound matches it in expectation, and DDIM with
    eta = 0 from x_T = 0 lands on the conditional mean."""
    torch.manual_seed(0)
    schedule = NoiseSchedule("cosine", 20)
    diffusion = GaussianDiffusion(ConditionalOracle(schedule), schedule, "eps", "large").double()
    c = torch.randn(2000, 2, dtype=torch.float64)
    x0 = c + torch.randn_like(c)
    exact = Normal(c, 1.0).log_prob(x0).sum(1)
    weight = diffusion.trajectory_log_weight(x0, _gaussian_decoder, cond=c)
    assert torch.allclose(weight, exact, atol=0.05)
    gap = -diffusion.bound(x0, _gaussian_decoder, cond=c) - exact
    assert abs(gap.mean().item()) < 4 * gap.std().item() / len(x0) ** 0.5
    assert torch.allclose(diffusion.sample_ddim(torch.zeros_like(c), 20, cond=c), c, atol=0.05)
    draws = diffusion.sample_ddpm(torch.randn_like(c), cond=c)
    assert (draws - c).mean(0).abs().max() < 0.1  # 2,000 draws: standard error 0.022


def test_mlp_denoiser_takes_a_context_exactly_when_built_with_one():
    x, t, c = torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), torch.randn(4, 5)
    conditional = MLPDenoiser(3, hidden=16, blocks=1, cond_dim=5)
    out = conditional(x, t, c)
    assert out.shape == (4, 3) and not torch.allclose(out, conditional(x, t, c + 1))
    with pytest.raises(ValueError, match="cond"):
        conditional(x, t)
    with pytest.raises(ValueError, match="cond"):
        MLPDenoiser(3, hidden=16, blocks=1)(x, t, c)


def test_bound_is_below_the_log_density_with_the_wrong_variance():
    torch.manual_seed(0)
    schedule = NoiseSchedule("cosine", 100)
    sigma = 0.5
    diffusion = GaussianDiffusion(
        GaussianOracle(schedule, sigma), schedule, "eps", "small"
    ).double()
    x0 = torch.randn(2000, 2, dtype=torch.float64) * sigma
    exact = Normal(0.0, sigma).log_prob(x0).sum(1).mean().item()
    assert (-diffusion.bound(x0, _gaussian_decoder)).mean().item() < exact - 0.1


def test_discretised_decoder_is_a_distribution_over_levels():
    levels = 17
    values = torch.linspace(-1, 1, levels)
    for mean, var in [(0.3, 0.01), (0.0, 1.0), (0.99, 1e-6), (-5.0, 1e-3)]:
        log_p = discretized_gaussian_log_likelihood(
            values, torch.tensor(mean), torch.tensor(var), levels
        )
        assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_discrete_model_probabilities_sum_to_one():
    """On 2 pixels with 3 levels the exp(trajectory log-weights) are unbiased estimates of the
    model's P(x); summed over all 9 images they total 1 (the discretised decoder makes the
    model a distribution over levels), and exp(bound) totals less."""
    torch.manual_seed(0)
    model = DDPM(
        DDPMConfig(timesteps=4, channels=8, mults=(1,)), DataSpec("image", (1, 1, 2), 3)
    ).eval()
    images = torch.cartesian_prod(torch.arange(3), torch.arange(3)).view(9, 1, 1, 2)
    with torch.no_grad():
        p = model.log_prob_trajectory(images.repeat(4000, 1, 1, 1)).exp().view(4000, 9).mean(0)
        bound = model.log_prob(images.repeat(100, 1, 1, 1), bound_steps=0).view(100, 9).mean(0)
    assert p.sum().item() == pytest.approx(1.0, abs=0.06)  # Monte Carlo: about 0.02 standard error
    assert bound.exp().sum().item() < 1.0


def test_stratified_bound_estimates_the_full_bound():
    """Same expectation: the means agree within four standard errors."""
    torch.manual_seed(0)
    schedule = NoiseSchedule("linear", 60)
    diffusion = GaussianDiffusion(GaussianOracle(schedule, 0.7), schedule, "eps", "small").double()
    x0 = torch.randn(4000, 2, dtype=torch.float64) * 0.7
    full = diffusion.bound(x0, _gaussian_decoder)
    stratified = diffusion.bound(x0, _gaussian_decoder, steps=6)
    stderr = ((full.var() + stratified.var()) / len(x0)).sqrt().item()
    assert abs(stratified.mean().item() - full.mean().item()) < 4 * stderr


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ddpm_shapes(prediction):
    torch.manual_seed(0)
    for spec in (DataSpec("image", (1, 8, 8), 17), DataSpec("vector", (3,))):
        model = DDPM(DDPMConfig(**TINY_IMAGE, prediction=prediction, bound_steps=3), spec)
        x = torch.randint(0, 17, (4, 1, 8, 8)) if spec.levels else torch.randn(4, 3)
        loss, metrics = model.loss(x)
        loss.backward()
        assert loss.shape == () and set(metrics) == {"mse", "vlb_terms"}  # hybrid loss by default
        model.eval()
        assert model.log_prob(x).shape == (4,) and model.bits_per_dim(x).shape == (4,)
        assert model.sample(2).shape == (2, *spec.shape)


def test_bound_decreases_with_training_on_a_2d_toy():
    torch.manual_seed(0)
    data = load_dataset("8gaussians", n=4000)
    model = DDPM(DDPMConfig(timesteps=20, hidden=64, blocks=2, bound_steps=0), data.spec)
    fit_density(model, data.train[:256], steps=1)  # sets the standardisation, one step
    with torch.no_grad():
        before = -model.log_prob(data.test[:1000]).mean().item()
    fit_density(model, data.train, steps=400, batch_size=256, lr=3e-3)
    with torch.no_grad():
        after = -model.log_prob(data.test[:1000]).mean().item()
    assert after < before - 0.5


def test_diffusion_density_fits_and_scores():
    torch.manual_seed(0)
    goal = torch.randn(512, 2) * 0.2 + torch.tensor([2.0, -1.0])
    density = DiffusionDensity(2, timesteps=20, hidden=32, blocks=1)
    density.fit(goal, steps=200, batch_size=128, lr=3e-3)
    with torch.no_grad():
        near = density.log_prob(torch.tensor([[2.0, -1.0]]))
        far = density.log_prob(torch.tensor([[-2.0, 2.0]]))
        assert near > far + 10
        assert density.log_weight(torch.tensor([[2.0, -1.0]])).shape == (1,)
    samples = density.sample(200)
    assert samples.shape == (200, 2)
    assert torch.allclose(samples.mean(0), torch.tensor([2.0, -1.0]), atol=0.3)
    assert math.isfinite(density.log_prob_estimate(goal[:8]).sum().item())


class ConstantNet(nn.Module):
    """Outputs a fixed prediction ``pred`` and variance interpolation ``u`` for every input."""

    def __init__(self, pred: float, u: float):
        super().__init__()
        self.pred, self.u = pred, u

    def forward(self, x, t):
        return torch.cat([torch.full_like(x, self.pred), torch.full_like(x, self.u)], 1)


def test_learned_variance_interpolates_in_log_space_and_its_kl_matches_a_hand_case():
    """u = 1 gives beta_t, u = -1 the posterior variance, u = 0 their geometric mean; the KL
    term at t is KL(N(q_mean, q_var) || N(mean, var)) summed over dimensions."""
    schedule = NoiseSchedule("cosine", 10)
    t = torch.tensor([4])
    x0, xt = torch.tensor([[0.5, -0.2]]), torch.tensor([[0.3, 0.1]])
    beta, small = schedule.betas[4].item(), schedule.posterior_var[4].item()
    for u, expected in [(1.0, beta), (-1.0, small), (0.0, math.sqrt(beta * small))]:
        diffusion = GaussianDiffusion(ConstantNet(0.0, u), schedule, "x0", "learned")
        mean, var = diffusion.p_mean_var(xt, t)
        assert var.shape == xt.shape and torch.allclose(var, torch.full_like(xt, expected))
        # x0-prediction of 0: the model's mean is the posterior mean with x0 = 0
        assert torch.allclose(mean, schedule.coef_xt[4] * xt)
        q_mean = schedule.coef_x0[4] * x0 + schedule.coef_xt[4] * xt
        by_hand = torch.distributions.kl_divergence(
            Normal(q_mean, math.sqrt(small)), Normal(mean, math.sqrt(expected))
        ).sum()
        term = diffusion._term(x0, xt, t, mean, var, _gaussian_decoder)
        assert term.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_hybrid_loss_bound_part_estimates_the_bound_step_terms():
    """T * L_t at a uniform t has the expectation of the bound minus its prior term."""
    torch.manual_seed(0)
    schedule = NoiseSchedule("cosine", 20)
    diffusion = GaussianDiffusion(GaussianOracle(schedule, 0.7), schedule, "eps", "small").double()
    x0 = torch.randn(8000, 2, dtype=torch.float64) * 0.7
    _, mse, vlb = diffusion.loss(x0, _gaussian_decoder, vlb_weight=1.0)
    steps = diffusion.bound(x0, _gaussian_decoder) - diffusion.prior_term(x0)
    stderr = ((vlb.var() + steps.var()) / len(x0)).sqrt().item()
    assert abs(vlb.mean().item() - steps.mean().item()) < 4 * stderr
    assert mse.shape == vlb.shape == (8000,)


def test_hybrid_loss_trains_only_the_variance_through_the_bound():
    """With a learned variance the bound term is detached from the prediction half of the net's
    output (Nichol & Dhariwal), so it gives gradient only to the variance half."""
    torch.manual_seed(0)
    output = torch.zeros(4, 4, requires_grad=True)  # (B, 2D): prediction, then u
    schedule = NoiseSchedule("cosine", 10)
    diffusion = GaussianDiffusion(lambda x, t: output, schedule, "eps", "learned")
    loss, mse, _ = diffusion.loss(torch.randn(4, 2), _gaussian_decoder, vlb_weight=1.0)
    (loss - mse).sum().backward()
    assert output.grad[:, :2].abs().max() == 0 and output.grad[:, 2:].abs().max() > 0


def test_learned_variance_model_is_a_distribution_and_validates():
    """As for the fixed variances: exp(one-trajectory log-weights) of a learned-variance model
    total 1 over all 9 images of 2 pixels with 3 levels."""
    torch.manual_seed(0)
    cfg = DDPMConfig(timesteps=4, channels=8, mults=(1,), variance="learned", vlb_weight=0.001)
    model = DDPM(cfg, DataSpec("image", (1, 1, 2), 3)).eval()
    images = torch.cartesian_prod(torch.arange(3), torch.arange(3)).view(9, 1, 1, 2)
    with torch.no_grad():
        p = model.log_prob_trajectory(images.repeat(4000, 1, 1, 1)).exp().view(4000, 9).mean(0)
    assert p.sum().item() == pytest.approx(1.0, abs=0.06)  # as in the fixed-variance test
    loss, metrics = model.train().loss(images)
    assert loss.shape == () and set(metrics) == {"mse", "vlb_terms"}
    with pytest.raises(ValueError, match="vlb_weight"):
        DDPMConfig(variance="learned", vlb_weight=0.0)


def _tiny_digits_model(**options) -> DDPM:
    cfg = DDPMConfig(timesteps=4, channels=8, mults=(1,), **options)
    return DDPM(cfg, DataSpec("image", (1, 4, 4), 5))


def test_weight_average_follows_its_update_rule_step_by_step():
    """After the k-th optimisation step every averaged weight is ``d avg + (1 - d) w`` with
    ``d = min(ema, (1 + k) / (10 + k))``; the optimiser never touches the average."""
    torch.manual_seed(0)
    model = _tiny_digits_model(ema=0.9)
    optimizers = model.optimizers(1e-2)
    averaged = {id(p) for p in model.diffusion_ema.parameters()}
    assert not any(id(p) in averaged for g in optimizers["opt"].param_groups for p in g["params"])
    expected = [p.detach().clone() for p in model.diffusion.parameters()]
    batch = torch.randint(0, 5, (8, 1, 4, 4))
    for k in range(1, 31):
        model.train_step(batch, optimizers)
        d = min(0.9, (1 + k) / (10 + k))
        for e, p in zip(expected, model.diffusion.parameters(), strict=True):
            e.mul_(d).add_(p.detach(), alpha=1 - d)
        assert int(model.updates) == k
    for e, a in zip(expected, model.diffusion_ema.parameters(), strict=True):
        assert torch.allclose(e, a, atol=1e-6)
    raw = torch.cat([p.flatten() for p in model.diffusion.parameters()])
    avg = torch.cat([p.flatten() for p in model.diffusion_ema.parameters()])
    assert not torch.allclose(raw, avg)  # d = 0.9 by the end: the average lags the weights


def test_log_prob_and_sample_use_the_weight_average_and_it_is_checkpointed():
    """With ``ema > 0`` the bound, the trajectory weight and the samples are those of the
    averaged denoiser (changing the raw weights changes none of them); with ``ema = 0`` the
    raw weights are used. The average is in the state dict, so a reload reproduces the bound."""
    torch.manual_seed(0)
    model = _tiny_digits_model(ema=0.99).eval()
    x = torch.randint(0, 5, (6, 1, 4, 4))
    noise = torch.randn(3, 1, 4, 4)
    with torch.no_grad():
        for p in model.diffusion_ema.parameters():
            p.add_(0.1 * torch.randn_like(p))

    def outputs(m: DDPM) -> list[torch.Tensor]:
        torch.manual_seed(1)
        with torch.no_grad():
            return [
                m.log_prob(x, bound_steps=0),
                m.log_prob_trajectory(x),
                m.sample(3, noise=noise),
            ]

    before = outputs(model)
    torch.manual_seed(1)
    with torch.no_grad():
        direct = -model.diffusion_ema.bound(model.encode(x), model._decoder)
    assert torch.allclose(before[0], direct)
    with torch.no_grad():
        for p in model.diffusion.parameters():
            p.mul_(-1.0)
    for a, b in zip(before, outputs(model), strict=True):
        assert torch.equal(a, b)

    assert any(k.startswith("diffusion_ema.") for k in model.state_dict())
    reloaded = _tiny_digits_model(ema=0.99).eval()
    reloaded.load_state_dict(model.state_dict())
    for a, b in zip(before, outputs(reloaded), strict=True):
        assert torch.equal(a, b)

    plain = _tiny_digits_model(ema=0.0).eval()
    assert plain.diffusion_ema is None and plain.evaluated is plain.diffusion
    plain.load_state_dict(model.state_dict(), strict=False)
    torch.manual_seed(1)
    with torch.no_grad():
        raw = -model.diffusion.bound(model.encode(x), model._decoder)
    assert torch.allclose(outputs(plain)[0], raw)
    with pytest.raises(ValueError, match="ema"):
        DDPMConfig(ema=1.0)
