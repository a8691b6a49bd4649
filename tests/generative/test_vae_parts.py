"""Encoders/decoders, likelihoods and priors of the VAE family."""

import itertools

import pytest
import torch
from torch import distributions as D
from torch import nn

from generative.vae.likelihoods import (
    Bernoulli,
    Categorical,
    DiscretizedLogistic,
    Normal,
    make_likelihood,
)
from generative.vae.nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from generative.vae.priors import (
    PRIORS,
    MixtureOfGaussians,
    PriorContext,
    StandardNormal,
    VampPrior,
    build_prior,
)


# -- nets -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "channels", "feature"),
    [
        ((1, 8, 8), (4, 8), (2, 2)),
        ((1, 28, 28), (4, 4, 4), (4, 4)),
        ((3, 64, 64), (4,) * 4, (4, 4)),
    ],
)
def test_conv_encoder_decoder_shapes(shape, channels, feature):
    x = torch.randn(2, *shape)
    enc = ConvEncoder(shape, 6, channels)
    assert enc(x).shape == (2, 6)
    assert enc.feature_size == feature
    dec = ConvDecoder(6, (5, *shape[1:]), channels)
    assert dec(torch.randn(2, 6)).shape == (2, 5, *shape[1:])
    spatial = ConvEncoder(shape, 3, channels, spatial=True)
    z = spatial(x)
    assert z.shape == (2, 3, *feature)
    assert ConvDecoder(3, shape, channels, spatial=True)(z).shape == (2, *shape)


def test_conv_decoder_retraces_odd_sizes():
    # 7 -> 4 -> 2: the decoder must give back 7, not 8.
    assert ConvDecoder(3, (2, 7, 5), (4, 4))(torch.randn(1, 3)).shape == (1, 2, 7, 5)


def test_conv_decoder_without_final_conv_ends_in_a_linear_transposed_conv():
    dec = ConvDecoder(3, (2, 7, 5), (4, 6), final_conv=False)
    assert dec(torch.randn(2, 3)).shape == (2, 2, 7, 5)
    last = dec.body[-1]
    assert isinstance(last, nn.ConvTranspose2d) and last.out_channels == 2
    full = ConvDecoder(3, (2, 7, 5), (4, 6))
    assert sum(p.numel() for p in dec.parameters()) < sum(p.numel() for p in full.parameters())


def test_mlp_shapes():
    assert MLPEncoder((1, 8, 8), 4, (16,))(torch.randn(3, 1, 8, 8)).shape == (3, 4)
    assert MLPDecoder(4, (2, 1, 8, 8), (16,))(torch.randn(3, 4)).shape == (3, 2, 1, 8, 8)


# -- likelihoods ----------------------------------------------------------------------------
def all_values(levels: int, dims: int) -> torch.Tensor:
    """Every data vector of ``dims`` dimensions with ``levels`` values: ``(levels**dims, dims)``."""
    return torch.tensor(list(itertools.product(range(levels), repeat=dims)))


@pytest.mark.parametrize(
    "likelihood",
    [Bernoulli(), Categorical(5), DiscretizedLogistic(7), DiscretizedLogistic(6, mixtures=3)],
    ids=["bernoulli", "categorical", "logistic", "logistic-mixture"],
)
def test_discrete_likelihoods_sum_to_one(likelihood):
    torch.manual_seed(0)
    dims = 3
    x = all_values(likelihood.levels, dims)
    params = torch.randn(1, likelihood.params_per_dim, dims).expand(len(x), -1, -1)
    total = likelihood.log_prob(params, x).logsumexp(0).exp()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("loc", [-3.0, -1.0, 0.0, 0.37, 1.0, 3.0])
@pytest.mark.parametrize("log_scale", [-7.0, -3.0, 0.0, 2.0])
def test_discretized_logistic_sums_to_one_over_levels(loc, log_scale):
    lik = DiscretizedLogistic(256)
    x = torch.arange(256).view(256, 1)
    params = torch.tensor([loc, log_scale]).view(1, 2, 1).expand(256, -1, -1)
    log_p = lik.log_prob(params, x)
    assert torch.isfinite(log_p).all()
    assert log_p.logsumexp(0).exp().item() == pytest.approx(1.0, abs=1e-4)


def test_discretized_logistic_samples_follow_its_probabilities():
    torch.manual_seed(0)
    lik = DiscretizedLogistic(9, mixtures=2)
    params = torch.tensor([0.3, -0.3, -0.5, 0.4, -1.2, -2.0]).view(1, 6, 1)
    probs = lik.log_prob(params.expand(9, -1, -1), torch.arange(9).view(9, 1)).exp()
    draws = lik.sample(params.expand(40000, -1, -1))[:, 0]
    freq = torch.bincount(draws, minlength=9).float() / len(draws)
    # 40,000 draws: the standard error of each frequency is below 0.0025.
    assert torch.allclose(freq, probs, atol=0.01)


def test_normal_likelihood_matches_torch():
    lik = Normal()
    params = torch.randn(4, 2, 3)
    x = torch.randn(4, 3)
    expected = D.Normal(params[:, 0], params[:, 1].exp()).log_prob(x).sum(1)
    assert torch.allclose(lik.log_prob(params, x), expected)


def test_make_likelihood_checks_the_data():
    assert isinstance(make_likelihood("auto", 2), Bernoulli)
    assert isinstance(make_likelihood("auto", None), Normal)
    with pytest.raises(ValueError, match="binary"):
        make_likelihood("bernoulli", 17)
    with pytest.raises(ValueError, match="continuous"):
        make_likelihood("categorical", None)


# -- priors ---------------------------------------------------------------------------------
def test_registry_resolves_every_prior():
    for name in PRIORS:
        prior = build_prior(
            name,
            PriorContext(
                dim=3, components=2, input_shape=(4,), posterior=lambda u: D.Normal(u[:, :3], 1.0)
            ),
        )
        assert prior.sample(5).shape == (5, 3)
        assert prior.log_prob(torch.randn(5, 3)).shape == (5,)
    with pytest.raises(ValueError, match="one of"):
        build_prior("nope", PriorContext(dim=3))


def test_standard_normal_log_prob_and_closed_form_kl():
    prior = StandardNormal(PriorContext(dim=3))
    z = torch.randn(6, 3)
    expected = D.MultivariateNormal(torch.zeros(3), torch.eye(3)).log_prob(z)
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-5)
    q = D.Normal(torch.randn(2, 3), torch.rand(2, 3) + 0.5)
    torch.manual_seed(0)
    draws = q.sample((20000,))
    mc = (q.log_prob(draws).sum(-1) - prior.log_prob(draws.flatten(0, 1)).view(20000, 2)).mean(0)
    # Monte Carlo with 20,000 draws: within a few hundredths of the closed form.
    assert torch.allclose(prior.kl(q, q.loc), mc, atol=0.05)


def test_mixture_of_gaussians_log_prob_is_the_mixture_density():
    torch.manual_seed(0)
    prior = MixtureOfGaussians(PriorContext(dim=2, components=3))
    with torch.no_grad():
        prior.log_scale.normal_(0, 0.3)
        prior.logits.normal_()
    z = torch.randn(5, 2)
    weights = prior.logits.softmax(0)
    density = sum(
        weights[k]
        * D.MultivariateNormal(prior.loc[k], torch.diag(prior.log_scale[k].exp() ** 2))
        .log_prob(z)
        .exp()
        for k in range(3)
    )
    assert torch.allclose(prior.log_prob(z), density.log(), atol=1e-5)


def test_vamp_prior_is_the_mean_of_pseudo_input_posteriors():
    torch.manual_seed(0)
    encoder = nn.Linear(4, 4)

    def posterior(u):
        loc, raw = encoder(u).chunk(2, -1)
        return D.Normal(loc, raw.exp())

    prior = VampPrior(PriorContext(dim=2, components=3, input_shape=(4,), posterior=posterior))
    z = torch.randn(5, 2)
    q = posterior(prior.pseudo_inputs)
    density = sum(
        D.MultivariateNormal(q.loc[k], torch.diag(q.scale[k] ** 2)).log_prob(z).exp() / 3
        for k in range(3)
    )
    assert torch.allclose(prior.log_prob(z), density.log(), atol=1e-5)
    # Gradients reach the pseudo-inputs and the encoder.
    prior.log_prob(z).sum().backward()
    assert prior.pseudo_inputs.grad is not None and encoder.weight.grad is not None


def test_vamp_prior_needs_a_posterior():
    with pytest.raises(ValueError, match="posterior"):
        VampPrior(PriorContext(dim=2))


def test_temperature_narrows_observation_samples():
    torch.manual_seed(0)
    lik = DiscretizedLogistic(256)
    params = torch.tensor([0.0, -2.0]).view(1, 2, 1).expand(5000, -1, -1)
    spread = {t: lik.sample(params, temperature=t).float().std() for t in (1.0, 0.3)}
    assert spread[0.3] < 0.5 * spread[1.0]
