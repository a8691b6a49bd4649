"""GANs: the WGAN-GP penalty (one coefficient per example, norm over all non-batch
dimensions), no batch norm in the critic, spectral norm, the two-optimiser step, and
learning a 2-D toy."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from generative.base import DataSpec
from generative.gan.losses import critic_loss, generator_loss, gradient_penalty
from generative.gan.model import DCGAN, WGANGP, GANConfig, WGANGPConfig

SPECS = [DataSpec("image", (1, 8, 8), 17), DataSpec("vector", (2,))]


def test_gradient_penalty_of_a_linear_critic():
    """critic(x) = <w, x> has gradient w everywhere: the penalty is (||w|| - 1)^2 with the norm
    over all of C, H, W (a norm over one dimension would give another number)."""
    torch.manual_seed(0)
    w = torch.randn(2, 3, 4)
    w = 3 * w / w.norm()  # ||w|| = 3 over all non-batch dimensions
    real, fake = torch.randn(5, 2, 3, 4), torch.randn(5, 2, 3, 4)
    penalty = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake)
    assert penalty.item() == pytest.approx((3 - 1) ** 2, rel=1e-5)


def test_gradient_penalty_uses_one_coefficient_per_example():
    torch.manual_seed(0)
    seen = []

    def critic(x):
        seen.append(x.detach())
        return x.flatten(1).sum(1)

    real, fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    gradient_penalty(critic, real, fake)
    coefficients = ((seen[0] - fake) / (real - fake)).flatten(1)  # (B, pixels)
    assert torch.allclose(coefficients, coefficients[:, :1].expand_as(coefficients), atol=1e-4)
    assert coefficients[:, 0].unique().numel() == 6  # and they differ between examples


def test_penalty_trains_the_critic():
    critic = nn.Linear(3, 1)
    penalty = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(4, 3), torch.randn(4, 3))
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", SPECS)
def test_wgan_gp_critic_has_no_batch_norm(spec):
    model = WGANGP(WGANGPConfig(**WGANGP.SMOKE), spec)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.critic.modules())
    with pytest.raises(ValueError, match="critic_norm"):
        WGANGPConfig(critic_norm="batch")


def test_spectral_norm_wraps_every_critic_layer():
    model = DCGAN(GANConfig(**DCGAN.SMOKE, spectral_norm=True, loss="hinge"), SPECS[0])
    layers = [m for m in model.critic.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)


def test_losses_have_their_textbook_values():
    scores = torch.tensor([0.0, 2.0])
    assert critic_loss("hinge", scores, -scores).item() == pytest.approx((1 + 0) / 2 * 2)
    assert critic_loss("wgan-gp", scores, scores - 1).item() == pytest.approx(-1.0)
    assert generator_loss("bce", torch.zeros(3)).item() == pytest.approx(0.6931, abs=1e-4)


@pytest.mark.parametrize("cls", [DCGAN, WGANGP])
@pytest.mark.parametrize("spec", SPECS)
def test_gan_shapes_and_samples(cls, spec):
    torch.manual_seed(0)
    model = cls(cls.Config(**cls.SMOKE), spec)
    optimizers = model.optimizers(1e-3)
    x = torch.randint(0, 17, (8, *spec.shape)) if spec.levels else torch.randn(8, 2)
    metrics = model.train_step(x, optimizers)
    assert {"loss", "loss_d", "d_real", "d_fake"} <= set(metrics)
    loss, _ = model.loss(x)
    assert loss.shape == ()
    samples = model.eval().sample(5)
    assert samples.shape == (5, *spec.shape)
    if spec.levels:
        assert samples.dtype == torch.long and samples.min() >= 0 and samples.max() <= 16


def test_generator_steps_every_n_critic_steps_with_two_time_scales():
    torch.manual_seed(0)
    model = WGANGP(WGANGPConfig(**WGANGP.SMOKE, n_critic=3, d_lr_ratio=4.0), SPECS[1])
    optimizers = model.optimizers(1e-4)
    assert optimizers["opt_d"].param_groups[0]["lr"] == pytest.approx(4e-4)
    assert optimizers["opt_g"].param_groups[0]["lr"] == pytest.approx(1e-4)
    updated = []
    for _ in range(6):
        before = [p.clone() for p in model.generator.parameters()]
        metrics = model.train_step(torch.randn(8, 2), optimizers)
        changed = any(
            not torch.equal(a, b) for a, b in zip(before, model.generator.parameters(), strict=True)
        )
        updated.append(changed)
        assert changed == ("loss_g" in metrics)
    assert updated == [False, False, True, False, False, True]


def test_dcgan_samples_improve_on_a_shifted_gaussian():
    torch.manual_seed(0)
    target_mean, target_std = torch.tensor([2.0, -1.0]), 0.5
    model = DCGAN(GANConfig(latent_dim=4, hidden=32, layers=2, critic_norm="none"), SPECS[1])
    optimizers = model.optimizers(1e-3)

    def error() -> float:
        with torch.no_grad():
            s = model.eval().sample(2000)
        model.train()
        return (s.mean(0) - target_mean).norm().item() + abs(s.std(0).mean().item() - target_std)

    before = error()
    for _ in range(400):
        model.train_step(torch.randn(128, 2) * target_std + target_mean, optimizers)
    assert error() < before / 3


def test_wgan_gp_critic_estimates_the_penalised_wasserstein_distance():
    """Real N(m, 0.25 I) vs fake N(0, 0.25 I): W1 = |m|. The best critic is linear with slope
    k along m, maximising k |m| - lambda (k - 1)^2, so its estimate is |m| + |m|^2 / (2 lambda)."""
    torch.manual_seed(0)
    model = WGANGP(WGANGPConfig(hidden=32, layers=2), SPECS[1])
    opt = model.optimizers(1e-3)["opt_d"]
    shift = torch.tensor([2.0, -1.0])
    for _ in range(400):
        real, fake = torch.randn(256, 2) * 0.5 + shift, torch.randn(256, 2) * 0.5
        loss, _ = model.critic_objective(real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        real, fake = torch.randn(20000, 2) * 0.5 + shift, torch.randn(20000, 2) * 0.5
        estimate = (model.critic(real).mean() - model.critic(fake).mean()).item()
    w1 = shift.norm().item()
    assert estimate == pytest.approx(w1 + w1**2 / (2 * 10.0), abs=0.1)


def test_critic_norm_auto_is_batch_for_images_and_none_for_vectors():
    image, vector = (DCGAN(GANConfig(**DCGAN.SMOKE), spec) for spec in SPECS)
    assert any(isinstance(m, nn.BatchNorm2d) for m in image.critic.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in vector.critic.modules())
    with pytest.raises(ValueError, match="critic_norm"):
        WGANGPConfig(critic_norm="auto")


def test_samples_come_from_the_weight_average():
    """After the k-th generator step the average moves by 1 - d, d = min(ema, (1 + k) / (10 + k)):
    at k = 1 d = 2/11, at k = 2 d = 0.25 (below ema = 0.9); samples use the average."""
    torch.manual_seed(0)
    model = DCGAN(GANConfig(**DCGAN.SMOKE, ema=0.9), SPECS[1])
    optimizers = model.optimizers(1e-2)
    average = [p.clone() for p in model.generator.parameters()]
    for d in (2 / 11, 0.25):
        model.train_step(torch.randn(8, 2), optimizers)
        weights = model.generator.parameters()
        average = [d * a + (1 - d) * p for a, p in zip(average, weights, strict=True)]
    for a, p in zip(average, model.generator_ema.parameters(), strict=True):
        assert torch.allclose(a, p, atol=1e-6)
    assert not torch.allclose(average[0], next(model.generator.parameters()))
    torch.manual_seed(1)
    samples = model.eval().sample(4)
    torch.manual_seed(1)
    assert torch.equal(samples, model.generator_ema(model.noise(4)))
