"""Offline sample-quality metrics from a small classifier trained on the dataset itself.

No pretrained network is downloaded: :func:`classifier_for` trains a small CNN on the
dataset's labelled training split (or loads it from a cache folder), freezes it, and its
penultimate layer is the feature space for FID and KID (computed by torchmetrics),
k-NN precision / recall (Kynkäänniemi et al. 2019), and its predictions give the
predicted-class histogram, where mode collapse shows.

Every figure comes with its real-vs-real value: the model's ``n`` samples and ``n`` test
images are each compared with the same ``n`` training images, so ``fid`` is read against
``fid_real`` (the floor set by sample size and features), and so on. Vector data (2-D toys,
latents) has no classifier: its raw coordinates are the features and there is no histogram.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from generative.data import Dataset

CLASSIFIER_VERSION = 3  # bump when the architecture or training recipe changes (cache key)


class DigitClassifier(nn.Module):
    """A small CNN over integer-level images ``(B, C, H, W)``: three 3x3 convolutions
    (two strided), a ``num_features``-wide feature layer and a linear read-out to
    ``classes`` logits. ``feature_mean`` / ``feature_std`` / ``feature_alive`` (set after
    training, from the training split) standardise the features the metrics use."""

    def __init__(
        self, shape: tuple[int, ...], levels: int, classes: int = 10, width: int = 16
    ) -> None:
        super().__init__()
        self.levels, self.num_features = levels, 64
        c, h, w = shape
        side = math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * side, self.num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.num_features, classes)
        self.register_buffer("feature_mean", torch.zeros(self.num_features))
        self.register_buffer("feature_std", torch.ones(self.num_features))
        self.register_buffer("feature_alive", torch.ones(self.num_features, dtype=torch.bool))

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` levels -> ``(B, num_features)``."""
        return self.body(x.float() / (self.levels - 1))

    def standardized_features(self, x: Tensor) -> Tensor:
        """``(B, F')``: the features that vary on the training split (dead ReLU units would
        blow up when divided by their near-zero spread), standardised with its statistics."""
        z = (self.features(x) - self.feature_mean) / self.feature_std
        return z[:, self.feature_alive]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` levels -> ``(B, classes)`` logits."""
        return self.head(self.features(x))


def random_shift(x: Tensor, pad: int) -> Tensor:
    """The batch ``(B, C, H, W)`` shifted by up to ``pad`` pixels (one shift per batch)."""
    h, w = x.shape[-2:]
    i, j = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    return F.pad(x, (pad, pad, pad, pad))[..., i : i + h, j : j + w]


class Features(nn.Module):
    """The frozen feature extractor handed to torchmetrics: ``(B, ...) -> (B, F)``.

    Wraps a classifier's :meth:`~DigitClassifier.features`, or flattens raw vectors when
    there is no classifier.
    """

    def __init__(self, classifier: DigitClassifier | None, dims: int):
        super().__init__()
        self.classifier = classifier
        alive = int(classifier.feature_alive.sum()) if classifier is not None else dims
        self.num_features = alive

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if self.classifier is None:
            return x.flatten(1).double()
        return self.classifier.standardized_features(x).double()


@contextlib.contextmanager
def _seeded(seed: int):
    """Run a block with the global RNG seeded, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _labels(data: Dataset, split: str) -> Tensor:
    labels = data.meta.get("labels", {}).get(split)
    if labels is None:
        raise ValueError(f"dataset {data.name!r} has no {split} labels to train a classifier on")
    return labels


def accuracy(classifier: nn.Module, images: Tensor, labels: Tensor, batch: int = 500) -> float:
    """Fraction of ``images (N, C, H, W)`` whose predicted class equals ``labels (N,)``."""
    classifier.eval()
    with torch.no_grad():
        hits = sum(
            int((classifier(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum())
            for i in range(0, len(images), batch)
        )
    return hits / len(images)


def train_classifier(
    data: Dataset, steps: int = 1500, batch_size: int = 64, lr: float = 1e-3, seed: int = 0
) -> tuple[DigitClassifier, float]:
    """Train a :class:`DigitClassifier` on ``data``'s labelled train split (random shifts of
    about a twelfth of the side as augmentation); return it frozen (eval mode, no
    gradients) with its test accuracy."""
    images, labels = data.train.long(), _labels(data, "train")
    classes = int(labels.max()) + 1
    pad = max(1, data.spec.shape[1] // 12)
    with _seeded(seed):
        model = DigitClassifier(tuple(data.spec.shape), data.spec.levels, classes)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(steps):
            idx = torch.randint(0, len(images), (batch_size,))
            logits = model.head(
                model.body(random_shift(images[idx].float(), pad) / (data.spec.levels - 1))
            )
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.requires_grad_(False).eval()
    with torch.no_grad():
        train_features = torch.cat([model.features(b) for b in images.split(500)])
    std = train_features.std(0)
    model.feature_mean.copy_(train_features.mean(0))
    model.feature_std.copy_(std.clamp(min=1e-6))
    # a unit with under 5% of the typical spread is (nearly) dead on real digits
    model.feature_alive.copy_(std > 0.05 * std.median())
    return model, accuracy(model, data.test.long(), _labels(data, "test"))


def classifier_for(
    data: Dataset, cache_dir: Path | str = Path("outputs") / "classifiers", **train_options
) -> tuple[DigitClassifier, float]:
    """The frozen classifier of ``data`` and its test accuracy, trained once and cached in
    ``cache_dir`` (keyed by dataset, shape, training-set size and recipe)."""
    c, h, w = data.spec.shape
    opts = "-".join(f"{k}{v}" for k, v in sorted(train_options.items()))
    key = f"{data.name}-{c}x{h}x{w}-L{data.spec.levels}-n{len(data.train)}-v{CLASSIFIER_VERSION}"
    path = Path(cache_dir) / f"classifier-{key}{'-' + opts if opts else ''}.pt"
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = DigitClassifier((c, h, w), data.spec.levels, state["classes"])
        model.load_state_dict(state["weights"])
        return model.requires_grad_(False).eval(), float(state["accuracy"])
    model, acc = train_classifier(data, **train_options)
    path.parent.mkdir(parents=True, exist_ok=True)
    classes = model.head.out_features
    torch.save({"weights": model.state_dict(), "accuracy": acc, "classes": classes}, path)
    return model, acc


# -- the metrics ---------------------------------------------------------------------------


def frechet_distance(extractor: Features, reference: Tensor, other: Tensor) -> float:
    """FID between ``reference`` and ``other`` ``(N, ...)`` in ``extractor``'s feature space."""
    fid = FrechetInceptionDistance(feature=extractor, normalize=True)
    fid.update(reference, real=True)
    fid.update(other, real=False)
    return float(fid.compute())


def kernel_distance(
    extractor: Features, reference: Tensor, other: Tensor, subsets: int = 50, seed: int = 0
) -> float:
    """KID (unbiased squared MMD, cubic polynomial kernel), averaged over ``subsets`` random
    halves of the sample."""
    size = max(2, min(len(reference), len(other)) // 2)
    with warnings.catch_warnings():  # it warns that it keeps all features: n is small here
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=extractor, subsets=subsets, subset_size=size)
    kid.update(reference, real=True)
    kid.update(other, real=False)
    with _seeded(seed):
        mean, _ = kid.compute()
    return float(mean)


def _kth_neighbour_radius(features: Tensor, k: int) -> Tensor:
    distances = torch.cdist(features, features)
    return distances.kthvalue(k + 1, dim=1).values  # k + 1: each point is its own nearest


def precision_recall(reference: Tensor, other: Tensor, k: int = 3) -> tuple[float, float]:
    """k-NN precision and recall of ``other`` against ``reference``, features ``(N, F)``.

    Precision: fraction of ``other`` inside the union of balls around reference points
    reaching their ``k``-th neighbour; recall: the same with the roles swapped.
    """
    distances = torch.cdist(other, reference)
    precision = (distances <= _kth_neighbour_radius(reference, k)[None, :]).any(1)
    recall = (_kth_neighbour_radius(other, k)[None, :] >= distances.T).any(1)
    return float(precision.double().mean()), float(recall.double().mean())


def class_histogram(classifier: nn.Module, images: Tensor) -> Tensor:
    """``(classes,)`` fraction of ``images`` predicted as each class."""
    with torch.no_grad():
        predicted = classifier(images).argmax(1)
    counts = torch.bincount(predicted, minlength=classifier.head.out_features).double()
    return counts / counts.sum()


def histogram_summary(histogram: Tensor) -> dict[str, float]:
    """Entropy of the predicted classes (nats; ``log K`` when uniform), the largest class
    share, and the number of classes holding at least half their uniform share."""
    p = histogram[histogram > 0]
    k = histogram.numel()
    return {
        "class_entropy": float(-(p * p.log()).sum()),
        "class_max_fraction": float(histogram.max()),
        "classes_covered": float((histogram >= 0.5 / k).sum()),
    }


def sample_quality(
    samples: Tensor,
    data: Dataset,
    classifier: DigitClassifier | None = None,
    n: int = 400,
    k: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric for ``samples (N >= n, ...)`` and for the test split, each against the
    same ``n`` training examples: keys ``fid``, ``kid``, ``precision``, ``recall`` (and
    ``class_entropy``, ``class_max_fraction``, ``classes_covered`` with a classifier), each
    with a ``_real`` twin for test vs train."""
    if len(samples) < n or len(data.test) < n or len(data.train) < n:
        raise ValueError(
            f"sample_quality needs n={n} samples, test and train examples; got "
            f"{len(samples)}, {len(data.test)}, {len(data.train)}"
        )
    with _seeded(seed):
        reference = data.train[torch.randperm(len(data.train))[:n]]
    extractor = Features(classifier, math.prod(data.spec.shape))
    reference_features = extractor(reference)
    out: dict[str, float] = {}
    for suffix, x in (("", samples[:n].to(reference.dtype)), ("_real", data.test[:n])):
        x_features = extractor(x)
        out[f"fid{suffix}"] = frechet_distance(extractor, reference, x)
        out[f"kid{suffix}"] = kernel_distance(extractor, reference, x, seed=seed)
        precision, recall = precision_recall(reference_features, x_features, k)
        out[f"precision{suffix}"], out[f"recall{suffix}"] = precision, recall
        if classifier is not None:
            summary = histogram_summary(class_histogram(classifier, x))
            out.update({f"{key}{suffix}": v for key, v in summary.items()})
    return out


def mode_coverage(
    samples: Tensor, centers: Tensor, std: float, within: float = 3.0, min_share: float = 0.01
) -> dict[str, float]:
    """Mode coverage on a mixture of isotropic Gaussians (the 2-D toys' GAN check).

    Each sample ``(N, D)`` belongs to its nearest centre ``(K, D)``; it is of high quality
    when it lies within ``within`` standard deviations of it. A mode counts as covered when
    it holds at least ``min_share`` of the samples as high-quality ones (1% by default, a
    twelfth of a fair share for eight modes), so a handful of strays does not cover a mode.
    Returns ``modes_covered``, ``modes`` and ``high_quality`` (the fraction within range).
    """
    distance, nearest = torch.cdist(samples.float(), centers.float()).min(1)
    good = distance <= within * std
    counts = torch.bincount(nearest[good], minlength=centers.shape[0])
    covered = counts >= min_share * samples.shape[0]
    return {
        "modes_covered": float(covered.sum()),
        "modes": float(centers.shape[0]),
        "high_quality": float(good.float().mean()),
    }
