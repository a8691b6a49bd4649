"""Every registered VAE: shapes, training, sampling, evaluation and config checks."""

import pytest
import torch
from torch import distributions as D

from generative import MODELS
from generative.base import DataSpec
from generative.data import DataError, load_dataset
from generative.vae.gaussian import GaussianVAE, GaussianVAEConfig, IWAEConfig
from generative.vae.vqvae import VQVAE, VQVAEConfig
from runs.registry import import_string

VAES = ["vae", "conv-vae", "beta-vae", "iwae", "gumbel-vae", "vq-vae"]

# Small but able to learn in a few hundred steps.
TINY = {
    "vae": {"hidden": (32,), "latent_dim": 4},
    "conv-vae": {"channels": (8, 8), "latent_dim": 4},
    "beta-vae": {"hidden": (32,), "latent_dim": 4},
    "iwae": {"hidden": (32,), "latent_dim": 4, "samples": 4},
    "gumbel-vae": {"hidden": (32,), "latents": 4, "categories": 4},
    "vq-vae": {
        "channels": (8,),
        "codes": 8,
        "code_dim": 4,
        "prior_hidden": 8,
        "prior_layers": 1,
        "prior_start": 0,
    },
}


def build(name, spec, **changes):
    cls = import_string(MODELS[name][0])
    return cls(cls.Config(**{**TINY[name], **changes}), spec)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_all_vaes_are_registered():
    assert set(VAES) <= set(MODELS)


@pytest.mark.parametrize("name", VAES)
@pytest.mark.parametrize(
    "spec",
    [
        DataSpec("image", (1, 8, 8), 17),
        DataSpec("image", (3, 12, 10), 256),
        DataSpec("image", (1, 8, 8), 2),
    ],
    ids=["digits", "rgb", "binary"],
)
def test_shapes_and_value_ranges(name, spec):
    torch.manual_seed(0)
    model = build(name, spec)
    x = torch.randint(0, spec.levels, (5, *spec.shape))
    loss, metrics = model.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in metrics.values())
    model.eval()
    samples = model.sample(6)
    assert samples.shape == (6, *spec.shape) and samples.dtype == torch.long
    assert samples.min() >= 0 and samples.max() < spec.levels
    recon = model.reconstruct(x)
    assert recon.shape == x.shape and recon.dtype == torch.long
    assert recon.min() >= 0 and recon.max() < spec.levels
    assert model.elbo(x).shape == (5,)
    log_p = model.log_prob(x, num_samples=7)
    assert log_p.shape == (5,) and torch.isfinite(log_p).all()
    grid = model.interpolate(x[:2], x[2:4], steps=3)
    assert grid.shape == (2, 3, *spec.shape)
    assert grid.min() >= 0 and grid.max() <= 1
    if hasattr(model, "traverse"):
        grid = model.traverse(x)
        assert grid.dim() == 5 and grid.shape[2:] == spec.shape
        assert grid.min() >= 0 and grid.max() <= 1


@pytest.mark.parametrize("name", VAES)
def test_loss_decreases_on_digits(name, digits):
    torch.manual_seed(0)
    model = build(name, digits.spec)
    optimizers = model.optimizers(3e-3)
    losses = [model.train_step(digits.batch("train", 32), optimizers)["loss"] for _ in range(200)]
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    # Measured drops between the first and last 30 of 200 steps: 26 to 40 nats per image.
    assert last < first - 15, (first, last)


def test_log_prob_is_tighter_than_the_elbo_on_average(digits):
    torch.manual_seed(0)
    model = build("vae", digits.spec)
    optimizers = model.optimizers(3e-3)
    for _ in range(200):
        model.train_step(digits.batch("train", 32), optimizers)
    model.eval()
    x = digits.test[:100]
    assert model.log_prob(x, num_samples=200).mean() > model.elbo(x).mean()


def test_log_prob_chunks_give_the_same_estimate(monkeypatch):
    import generative.vae.base as vae_base

    torch.manual_seed(0)
    spec = DataSpec("image", (1, 8, 8), 17)
    model = build("vae", spec)
    x = torch.randint(0, 17, (3, 1, 8, 8))
    torch.manual_seed(1)
    whole = model.log_prob(x, num_samples=10)
    # Room for 2 pairs per chunk: 2 examples x 1 sample at a time.
    monkeypatch.setattr(vae_base, "EVAL_FLOATS", 2 * spec.dims * model.likelihood.params_per_dim)
    torch.manual_seed(1)
    chunked = model.log_prob(x, num_samples=10)
    assert chunked.shape == (3,)
    assert torch.allclose(whole.mean(), chunked.mean(), atol=5.0)


def test_iwae_objective_is_above_the_elbo(digits):
    torch.manual_seed(0)
    model = GaussianVAE(IWAEConfig(hidden=(32,), latent_dim=4, samples=50), digits.spec)
    _, metrics = model.loss(digits.train[:200])
    assert metrics["neg_iwae"] < metrics["neg_elbo"]


def test_gumbel_kl_is_exact():
    torch.manual_seed(0)
    model = build("gumbel-vae", DataSpec("image", (1, 8, 8), 17))
    log_q = torch.randn(3, 4, 4).log_softmax(-1)
    uniform = D.Categorical(logits=torch.zeros(3, 4, 4))
    expected = D.kl_divergence(D.Categorical(logits=log_q), uniform).sum(-1)
    assert torch.allclose(model.kl(log_q), expected, atol=1e-5)


def test_gumbel_temperature_anneals_and_is_checkpointed(digits):
    model = build("gumbel-vae", digits.spec, anneal_rate=1e-2, temperature_min=0.3)
    optimizers = model.optimizers(1e-3)
    for _ in range(50):
        model.train_step(digits.batch("train", 8), optimizers)
    assert model.current_temperature == pytest.approx(
        max(0.3, torch.exp(torch.tensor(-0.5)).item())
    )
    fresh = build("gumbel-vae", digits.spec, anneal_rate=1e-2, temperature_min=0.3)
    fresh.load_state_dict(model.state_dict())
    assert fresh.current_temperature == model.current_temperature


def test_vq_vae_uses_its_codebook_and_trains_its_prior(digits):
    torch.manual_seed(0)
    model = build("vq-vae", digits.spec, codes=16, channels=(16,), prior_start=50)
    optimizers = model.optimizers(3e-3)
    metrics = [model.train_step(digits.batch("train", 32), optimizers) for _ in range(200)]
    assert "prior_nll" not in metrics[49] and "prior_nll" in metrics[50]
    # A collapsed codebook has perplexity near 1; this one measured about 5 (digits' 4x4
    # maps are dominated by blank background, so the usage is far from uniform).
    perplexity = sum(m["perplexity"] for m in metrics[-20:]) / 20
    assert perplexity > 3, perplexity
    used = model.eval().codes_of(digits.val).unique().numel()
    assert used >= 8, used  # measured 12 of 16
    assert metrics[-1]["prior_nll"] < metrics[50]["prior_nll"]
    # Only the prior's optimiser holds the prior's parameters.
    prior_params = {id(p) for p in model.prior.parameters()}
    assert not prior_params & {id(p) for g in optimizers["opt"].param_groups for p in g["params"]}


def test_vq_vae_codebook_loss_variant_trains():
    torch.manual_seed(0)
    model = VQVAE(
        VQVAEConfig(**{**TINY["vq-vae"], "ema_decay": 0.0}), DataSpec("image", (1, 8, 8), 17)
    )
    loss, _ = model.loss(torch.randint(0, 17, (4, 1, 8, 8)))
    loss.backward()
    assert model.quantizer.codebook.grad is not None


def test_learned_priors_train_inside_the_vae(digits):
    for prior in ("mog", "vamp"):
        torch.manual_seed(0)
        model = build("vae", digits.spec, prior=prior, prior_components=3)
        loss, _ = model.loss(digits.train[:16])
        loss.backward()
        grads = [p.grad for p in model.prior.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert model.sample(4).shape == (4, 1, 8, 8)


def test_traverse_sweeps_one_latent_per_row():
    torch.manual_seed(0)
    model = build("vae", DataSpec("image", (1, 8, 8), 17))
    x = torch.randint(0, 17, (10, 1, 8, 8))
    grid = model.traverse(x, steps=5, dims=3)
    assert grid.shape == (3, 5, 1, 8, 8)
    # Each row sweeps a latent from -3 to 3, so its two ends decode differently.
    assert not torch.allclose(grid[:, 0], grid[:, -1])
    gumbel = build("gumbel-vae", DataSpec("image", (1, 8, 8), 17))
    assert gumbel.traverse(x, dims=2).shape == (2, 4, 1, 8, 8)


@pytest.mark.parametrize(
    ("cls", "changes", "match"),
    [
        (IWAEConfig, {"beta": 2.0}, "beta"),
        (GaussianVAEConfig, {"prior": "flowz"}, "prior"),
        (GaussianVAEConfig, {"net": "resnet"}, "net"),
        (GaussianVAEConfig, {"likelihood": "poisson"}, "likelihood"),
        (VQVAEConfig, {"net": "mlp"}, "net"),
    ],
)
def test_config_errors_name_the_field(cls, changes, match):
    with pytest.raises(ValueError, match=f"invalid {match}="):
        cls(**changes)


def test_likelihood_that_does_not_fit_the_data_is_a_data_error():
    with pytest.raises(DataError, match="binary"):
        GaussianVAE(GaussianVAEConfig(likelihood="bernoulli"), DataSpec("image", (1, 8, 8), 17))
    with pytest.raises(DataError, match="conv"):
        GaussianVAE(GaussianVAEConfig(net="conv"), DataSpec("vector", (5,), None))


def test_continuous_vector_data():
    torch.manual_seed(0)
    model = GaussianVAE(
        GaussianVAEConfig(hidden=(8,), latent_dim=2), DataSpec("vector", (2,), None)
    )
    x = torch.randn(7, 2)
    assert model.log_prob(x, num_samples=5).shape == (7,)
    assert model.sample(3).dtype == torch.float32
    assert type(model.likelihood).__name__ == "Normal"
