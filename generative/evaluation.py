"""Evaluation shared by every family: one function per quantity.

Conventions a model follows to be evaluated:

- ``log_prob(x) -> (B,)`` in nats, given ``x`` exactly as the dataset yields it (integer
  levels for discrete data). Continuous models of discrete data include the
  dequantisation term themselves (see :func:`generative.data.dequantize`).
- Models whose ``log_prob`` is an estimate (VAEs) also define ``elbo(x) -> (B,)`` and take
  ``log_prob(x, num_samples=K)``: the importance-sampled estimate with ``K`` samples.
- Models that can reconstruct (autoencoders) define ``reconstruct(x) -> x_hat`` in the
  same format as ``x`` (integer levels for discrete data).

Reported numbers: ``nll`` (nats per example), ``nats_per_dim`` and ``bpd`` (bits per
dimension: ``nll / (D ln 2)``), and ``neg_elbo`` next to ``nll`` where it exists.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from generative.base import GenerativeModel

DEFAULT_IMPORTANCE_SAMPLES = 1000


def has_log_prob(model: nn.Module) -> bool:
    """True when the model's class overrides :meth:`GenerativeModel.log_prob`."""
    return type(model).log_prob is not GenerativeModel.log_prob


def is_estimate(model: nn.Module) -> bool:
    """True for models whose ``log_prob`` is an importance-sampled estimate (they have ``elbo``)."""
    return callable(getattr(model, "elbo", None))


def trainable_parameters(model: nn.Module) -> int:
    """Parameters an optimiser trains: not frozen copies such as weight averages (EMA)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mean_over(values: Callable[[Tensor], Tensor], batches: Iterable[Tensor]) -> float:
    """Mean of ``values(x) -> (B,)`` over every example of ``batches``, in float64."""
    total, count = 0.0, 0
    for x in batches:
        v = values(x).double()
        total += float(v.sum())
        count += v.numel()
    if count == 0:
        raise ValueError("no examples to evaluate")
    return total / count


@torch.no_grad()
def negative_log_likelihood(model: nn.Module, batches: Iterable[Tensor]) -> float:
    """Mean ``-log p(x)`` in nats per example (exact models)."""
    with _eval_mode(model):
        return -mean_over(model.log_prob, batches)


@torch.no_grad()
def importance_sampled_nll(
    model: nn.Module, batches: Iterable[Tensor], num_samples: int = DEFAULT_IMPORTANCE_SAMPLES
) -> float:
    """Mean ``-log p(x)`` estimated with ``num_samples`` importance samples per example."""
    with _eval_mode(model):
        return -mean_over(lambda x: model.log_prob(x, num_samples=num_samples), batches)


@torch.no_grad()
def negative_elbo(model: nn.Module, batches: Iterable[Tensor]) -> float:
    """Mean negative evidence lower bound in nats per example (an upper bound on the NLL)."""
    with _eval_mode(model):
        return -mean_over(model.elbo, batches)


def bits_per_dim(nats_per_example: float, dims: int) -> float:
    """Nats per example -> bits per dimension."""
    return nats_per_example / (dims * math.log(2))


def likelihood_metrics(
    model: nn.Module,
    batches: Callable[[], Iterator[Tensor]],
    dims: int,
    num_samples: int = DEFAULT_IMPORTANCE_SAMPLES,
    prefix: str = "",
) -> dict[str, float]:
    """``nll``, ``nats_per_dim`` and ``bpd`` (plus ``neg_elbo`` for estimates) of one split.

    ``batches`` returns a fresh ordered pass over the split each call; ``dims`` is the
    number of dimensions per example. Models without ``log_prob`` (GANs) give ``{}``.
    """
    out: dict[str, float] = {}
    if is_estimate(model):
        out["neg_elbo"] = negative_elbo(model, batches())
        out["nll"] = importance_sampled_nll(model, batches(), num_samples)
    elif has_log_prob(model):
        out["nll"] = negative_log_likelihood(model, batches())
    if "nll" in out:
        out["nats_per_dim"] = out["nll"] / dims
        out["bpd"] = bits_per_dim(out["nll"], dims)
    return {prefix + k: v for k, v in out.items()}


@torch.no_grad()
def reconstructions(model: nn.Module, x: Tensor) -> Tensor | None:
    """Inputs and reconstructions interleaved ``(2B, *x.shape[1:])``, or ``None`` if unsupported."""
    reconstruct = getattr(model, "reconstruct", None)
    if not callable(reconstruct):
        return None
    with _eval_mode(model):
        x_hat = reconstruct(x)
    return torch.stack([x, x_hat.to(x.dtype)], 1).flatten(0, 1)


@torch.no_grad()
def timed_samples(model: nn.Module, n: int, temperature: float = 1.0) -> tuple[Tensor, float]:
    """``n`` samples and the sampling rate in samples per second."""
    with _eval_mode(model):
        start = time.perf_counter()
        samples = model.sample(n, temperature=temperature)
        if samples.is_cuda:  # CUDA kernels run asynchronously: wait for them to finish
            torch.cuda.synchronize(samples.device)
        seconds = time.perf_counter() - start
    return samples, n / max(seconds, 1e-9)


class _eval_mode:
    """Switch a module to eval mode for a block and back to what it was."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.was_training = model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)
