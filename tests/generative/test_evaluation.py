import math

import pytest
import torch

from generative.base import DataSpec, GenerativeModel
from generative.evaluation import (
    bits_per_dim,
    has_log_prob,
    importance_sampled_nll,
    is_estimate,
    likelihood_metrics,
    negative_log_likelihood,
    reconstructions,
    timed_samples,
)


class Uniform(GenerativeModel):
    """Uniform over ``levels`` values per dimension: NLL = D log L exactly."""

    Config = dict

    def log_prob(self, x):
        return torch.full((x.shape[0],), -self.spec.dims * math.log(self.spec.levels))

    def sample(self, n, temperature=1.0):
        return torch.randint(0, self.spec.levels, (n, *self.spec.shape))


class Estimated(Uniform):
    """Pretends to be a VAE: an ELBO 3 nats below, and an estimate that records K."""

    def log_prob(self, x, num_samples=1):
        self.k = num_samples
        return super().log_prob(x)

    def elbo(self, x):
        return super().log_prob(x) - 3.0

    def reconstruct(self, x):
        return x.flip(-1)


class NoDensity(GenerativeModel):
    Config = dict


SPEC = DataSpec("image", (1, 8, 8), 17)


def batches():
    return iter(
        [torch.zeros(5, 1, 8, 8, dtype=torch.long), torch.ones(2, 1, 8, 8, dtype=torch.long)]
    )


def test_uniform_digits_give_the_anchor():
    # intro_dgm's uniform anchor: 64 log 17 = 181.3 nats per image.
    nll = negative_log_likelihood(Uniform({}, SPEC), batches())
    assert nll == pytest.approx(181.3, abs=0.05)
    assert bits_per_dim(nll, 64) == pytest.approx(math.log2(17))


def test_metrics_pick_the_estimate_and_report_the_elbo_beside_it():
    model = Estimated({}, SPEC)
    assert is_estimate(model) and has_log_prob(model)
    metrics = likelihood_metrics(model, batches, 64, num_samples=7, prefix="test/")
    assert model.k == 7
    assert metrics["test/neg_elbo"] == pytest.approx(metrics["test/nll"] + 3)
    assert metrics["test/bpd"] == pytest.approx(math.log2(17))
    assert importance_sampled_nll(model, batches(), 5) == pytest.approx(64 * math.log(17))


def test_models_without_a_density_give_no_likelihood():
    model = NoDensity({}, SPEC)
    assert not has_log_prob(model)
    assert likelihood_metrics(model, batches, 64) == {}


def test_reconstructions_interleave_inputs_and_outputs():
    x = torch.arange(8).view(2, 1, 2, 2)
    pairs = reconstructions(Estimated({}, SPEC), x)
    assert pairs.shape == (4, 1, 2, 2)
    assert torch.equal(pairs[0], x[0]) and torch.equal(pairs[1], x[0].flip(-1))
    assert reconstructions(Uniform({}, SPEC), x) is None


def test_timed_samples_restore_the_training_mode():
    model = Uniform({}, SPEC).train()
    samples, rate = timed_samples(model, 4)
    assert samples.shape == (4, 1, 8, 8) and rate > 0 and model.training
