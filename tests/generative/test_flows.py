"""Flows: invertibility and exact log-determinants of every layer, MADE's autoregressive
property, change of variables against torch.distributions, the dequantisation accounting,
and learning on a 2-D toy."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian
from torch.distributions import MultivariateNormal, Normal

from generative.base import DataSpec
from generative.data import load_dataset
from generative.density import fit_density
from generative.flows.actnorm import ActNorm
from generative.flows.autoregressive import IAFLayer, MAFLayer
from generative.flows.bijection import Flatten, Reverse, Squeeze
from generative.flows.coupling import AffineCoupling, channel_mask, checkerboard_mask, half_mask
from generative.flows.density import FlowDensity
from generative.flows.glow import Glow, GlowConfig, glow_image
from generative.flows.invconv import InvertibleConv1x1
from generative.flows.logit import LogitTransform
from generative.flows.made import MADE, MaskedLinear
from generative.flows.maf import IAF, MAF
from generative.flows.nets import conv_conditioner, mlp_conditioner
from generative.flows.realnvp import RealNVP, RealNVPConfig, realnvp_image

FLOWS = [RealNVP, Glow, MAF, IAF]
TINY = {
    RealNVP: {"hidden": 8},
    Glow: {"hidden": 16, "steps": 4},
    MAF: {"hidden": 16},
    IAF: {"hidden": 16},
}

# name -> (layer factory, shape of one example, inputs in (0, 1) instead of R)
LAYERS = {
    "coupling-half": (
        lambda: AffineCoupling(half_mask(4, 1), mlp_conditioner(4, 8, 1, 8)),
        (4,),
        False,
    ),
    "coupling-checkerboard": (
        lambda: AffineCoupling(checkerboard_mask((2, 4, 4), 1), conv_conditioner(2, 4, 4)),
        (2, 4, 4),
        False,
    ),
    "coupling-channel": (
        lambda: AffineCoupling(channel_mask((4, 2, 2), 0), conv_conditioner(4, 4, 8)),
        (4, 2, 2),
        False,
    ),
    "actnorm-vector": (lambda: ActNorm(3), (3,), False),
    "actnorm-image": (lambda: ActNorm(2), (2, 3, 3), False),
    "invconv-vector": (lambda: InvertibleConv1x1(3), (3,), False),
    "invconv-image": (lambda: InvertibleConv1x1(2), (2, 3, 3), False),
    "maf": (lambda: MAFLayer(4, (12, 12)), (4,), False),
    "iaf": (lambda: IAFLayer(4, (12, 12)), (4,), False),
    "logit": (lambda: LogitTransform(0.05), (5,), True),
    "squeeze": (lambda: Squeeze(), (1, 4, 4), False),
    "reverse": (lambda: Reverse(), (4,), False),
    "flatten": (lambda: Flatten((2, 2, 2)), (2, 2, 2), False),
    "realnvp-multiscale": (
        lambda: realnvp_image((1, 4, 4), RealNVPConfig(hidden=4, scales=2)),
        (1, 4, 4),
        False,
    ),
    "glow-multiscale": (
        lambda: glow_image((1, 4, 4), GlowConfig(hidden=4, steps=1, levels=2)),
        (1, 4, 4),
        False,
    ),
}


def random_layer(name: str):
    """The layer in float64 with every parameter moved away from its (identity) init."""
    factory, shape, unit = LAYERS[name]
    torch.manual_seed(0)
    layer = factory().double().eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = (
        torch.rand(3, *shape, dtype=torch.float64)
        if unit
        else torch.randn(3, *shape, dtype=torch.float64)
    )
    return layer, x


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_is_invertible(name):
    layer, x = random_layer(name)
    z, _ = layer(x)
    assert torch.allclose(layer.inverse(z), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_log_det_matches_brute_force_jacobian(name):
    layer, x = random_layer(name)
    _, log_det = layer(x)
    for i in range(x.shape[0]):
        jac = jacobian(lambda v, i=i: layer(v.view(1, *x.shape[1:]))[0].flatten(), x[i].flatten())
        assert jac.shape[0] == jac.shape[1]  # every layer keeps the dimension
        assert log_det[i].item() == pytest.approx(
            torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-6
        )


def test_made_is_autoregressive():
    torch.manual_seed(0)
    made = MADE(5, (16, 16), outputs=2).double()
    with torch.no_grad():
        for p in made.parameters():
            p.add_(0.5 * torch.randn_like(p))
    jac = jacobian(lambda v: made(v[None])[0], torch.randn(5, dtype=torch.float64))  # (2, 5, 5)
    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool))  # j >= i: must not influence output i
    assert torch.all(jac[:, upper] == 0)
    # and every earlier input is connected to it through the masks
    masks = [m.mask for m in made.modules() if isinstance(m, MaskedLinear)]
    paths = masks[-1]
    for mask in reversed(masks[:-1]):
        paths = paths @ mask
    assert torch.all(paths.view(2, 5, 5)[:, ~upper] > 0)


@pytest.mark.parametrize("cls", [RealNVP, MAF])
def test_identity_flow_log_prob_is_the_base_normal(cls):
    torch.manual_seed(0)
    model = cls(cls.Config(**TINY[cls]), DataSpec("vector", (3,)))
    x = torch.randn(6, 3) * 2
    expected = Normal(0.0, 1.0).log_prob(x).sum(1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-5)


def test_glow_linear_flow_matches_multivariate_normal():
    """One Glow step with identity ActNorm and coupling is z = W x, so x ~ N(0, (W^T W)^-1)."""
    torch.manual_seed(0)
    model = Glow(GlowConfig(hidden=8, steps=1), DataSpec("vector", (3,))).double().eval()
    invconv = model.flow.layers[1]
    with torch.no_grad():
        for p in invconv.parameters():
            p.add_(0.4 * torch.randn_like(p))
        w = invconv.weight()
    x = torch.randn(6, 3, dtype=torch.float64)
    expected = MultivariateNormal(torch.zeros(3, dtype=torch.float64), precision_matrix=w.T @ w)
    assert torch.allclose(model.log_prob(x), expected.log_prob(x), atol=1e-8)


def test_actnorm_initialises_from_data():
    layer = ActNorm(2)
    x = torch.randn(64, 2, 3, 3) * torch.tensor([3.0, 0.5])[None, :, None, None] + 1
    z, _ = layer(x)
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z.std((0, 2, 3)), torch.ones(2), atol=1e-3)


def test_dequantised_probabilities_sum_as_the_change_of_variables_says():
    """An identity flow on 2 pixels with 3 levels: summed over the 9 images, the unbiased
    estimates exp(log_prob) of P(x) must total the base mass of the logit's box,
    (Phi(logit(1 - a)) - Phi(logit(a)))^2, which only holds if every log-det (dequantisation
    scale, logit, flow) is counted."""
    torch.manual_seed(0)
    alpha = 0.05
    model = RealNVP(
        RealNVPConfig(hidden=4, scales=1, logit_alpha=alpha), DataSpec("image", (1, 1, 2), 3)
    )
    images = torch.cartesian_prod(torch.arange(3), torch.arange(3)).view(9, 1, 1, 2)
    draws = 4000
    with torch.no_grad():
        p = model.log_prob(images.repeat(draws, 1, 1, 1)).exp().view(draws, 9).mean(0)
    edge = math.log((1 - alpha) / alpha)
    box = (
        Normal(0.0, 1.0).cdf(torch.tensor(edge)) - Normal(0.0, 1.0).cdf(torch.tensor(-edge))
    ) ** 2
    assert p.sum().item() == pytest.approx(box.item(), abs=0.01)


@pytest.mark.parametrize("cls", FLOWS)
def test_image_flow_shapes_and_samples(cls):
    torch.manual_seed(0)
    model = cls(cls.Config(**cls.SMOKE), DataSpec("image", (1, 8, 8), 17))
    x = torch.randint(0, 17, (4, 1, 8, 8))
    loss, metrics = model.loss(x)
    assert loss.shape == () and model.log_prob(x).shape == (4,)
    assert metrics["bpd"] == pytest.approx(metrics["nll"] / (64 * math.log(2)))
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8) and samples.dtype == torch.long
    assert samples.min() >= 0 and samples.max() <= 16


@pytest.mark.parametrize("cls", FLOWS)
def test_flow_learns_a_2d_toy(cls):
    torch.manual_seed(0)
    data = load_dataset("moons", n=2000)
    model = cls(cls.Config(**TINY[cls]), data.spec)
    with torch.no_grad():
        before = -model.log_prob(data.test).mean().item()
    fit_density(model, data.train, steps=150, batch_size=128, lr=3e-3)
    with torch.no_grad():
        after = -model.log_prob(data.test).mean().item()
    # the best Gaussian fit of moons (std 1.74 x 1.01) has entropy 3.40 nats
    assert after < min(before, 3.2)
    assert model.sample(7).shape == (7, 2)


def test_flow_density_fits_and_scores():
    torch.manual_seed(0)
    goal = torch.randn(512, 3) * 0.3 + torch.tensor([1.0, -2.0, 0.5])
    density = FlowDensity(3, "maf", hidden=16)
    losses = density.fit(goal, steps=200, batch_size=128, lr=3e-3)
    assert losses[-1] < losses[0]
    near, far = torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[-3.0, 3.0, 0.0]])
    with torch.no_grad():
        assert density.log_prob(near) > density.log_prob(far) + 10
    assert density.sample(4).shape == (4, 3)
