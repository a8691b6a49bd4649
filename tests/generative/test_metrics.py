"""Sample-quality metrics: the frozen digits classifier, FID / KID / precision / recall with
their real-vs-real twins, and the class histogram that shows mode collapse."""

import pytest
import torch

from generative.data import load_dataset
from generative.metrics import (
    class_histogram,
    classifier_for,
    histogram_summary,
    precision_recall,
    sample_quality,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def classifier(digits, tmp_path_factory):
    """A quickly trained classifier (300 steps), cached in a temporary folder."""
    cache = tmp_path_factory.mktemp("classifiers")
    model, acc = classifier_for(digits, cache_dir=cache, steps=300)
    return model, acc, cache


def test_classifier_is_frozen_accurate_and_cached(digits, classifier):
    model, acc, cache = classifier
    assert acc > 0.75  # 300 steps; the default 1500 reach about 0.93 on this split
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"
    again, acc_again = classifier_for(digits, cache_dir=cache, steps=300)
    assert acc_again == acc
    x = digits.test[:5]
    assert torch.equal(again(x), model(x))


def test_fid_real_vs_real_is_lower_than_real_vs_noise(digits, classifier):
    model, _, _ = classifier
    torch.manual_seed(0)
    noise = torch.randint(0, 17, (200, 1, 8, 8))
    metrics = sample_quality(noise, digits, model, n=200)
    assert metrics["fid_real"] < metrics["fid"] / 5
    assert metrics["kid_real"] < metrics["kid"]
    assert metrics["precision_real"] > metrics["precision"]
    assert metrics["recall_real"] > metrics["recall"]


def test_class_histogram_detects_mode_collapse(digits, classifier):
    model, _, _ = classifier
    ones = digits.train[digits.meta["labels"]["train"] == 1]
    collapsed = ones[torch.arange(200) % len(ones)]
    metrics = sample_quality(collapsed, digits, model, n=200)
    assert metrics["class_max_fraction"] > 0.7 and metrics["class_entropy"] < 1.0
    assert metrics["classes_covered"] <= 2
    assert metrics["class_entropy_real"] > 2.0  # log 10 = 2.30 when uniform
    assert metrics["classes_covered_real"] == 10
    assert metrics["recall"] < metrics["recall_real"]  # one digit cannot cover the others


def test_histogram_summary_of_known_histograms():
    uniform = histogram_summary(torch.full((10,), 0.1, dtype=torch.float64))
    assert uniform["class_entropy"] == pytest.approx(torch.log(torch.tensor(10.0)).item())
    assert uniform["classes_covered"] == 10
    point = histogram_summary(torch.eye(10, dtype=torch.float64)[3])
    assert point["class_entropy"] == 0 and point["class_max_fraction"] == 1


def test_class_histogram_sums_to_one(digits, classifier):
    histogram = class_histogram(classifier[0], digits.test[:50])
    assert histogram.shape == (10,) and histogram.sum().item() == pytest.approx(1.0)


def test_precision_recall_of_identical_and_disjoint_sets():
    torch.manual_seed(0)
    a = torch.randn(100, 4)
    assert precision_recall(a, a, k=3) == (1.0, 1.0)
    assert precision_recall(a, a + 100, k=3) == (0.0, 0.0)


def test_vector_data_uses_raw_coordinates():
    data = load_dataset("moons", n=2000)
    torch.manual_seed(0)
    metrics = sample_quality(data.train[:200] + 3.0, data, n=200)
    assert metrics["fid"] > 10 * metrics["fid_real"]
    assert "class_entropy" not in metrics


def test_mode_coverage_counts_modes_and_quality():
    from generative.datasets.toy import EIGHT_GAUSSIANS_STD, eight_gaussian_centers
    from generative.metrics import mode_coverage

    centers = eight_gaussian_centers()
    gen = torch.Generator().manual_seed(0)
    full = torch.cat(
        [c + EIGHT_GAUSSIANS_STD * torch.randn(100, 2, generator=gen) for c in centers]
    )
    result = mode_coverage(full, centers, EIGHT_GAUSSIANS_STD)
    assert result["modes_covered"] == 8
    assert result["high_quality"] > 0.98  # 3 sd in 2-D holds 98.9% of a Gaussian's mass
    collapsed = centers[:3].repeat_interleave(100, 0)  # three modes only, exactly on centre
    strays = torch.zeros(5, 2)  # a few samples between modes: low quality, cover nothing
    result = mode_coverage(torch.cat([collapsed, strays]), centers, EIGHT_GAUSSIANS_STD)
    assert result["modes_covered"] == 3
    assert result["high_quality"] == pytest.approx(300 / 305)
