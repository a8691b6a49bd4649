"""The interface every generative family implements, and what it learns from.

A model is an ``nn.Module`` built from its own frozen ``Config`` dataclass and the
:class:`DataSpec` of the data it models. The trainer in ``runs/`` only ever calls
``optimizers``, ``train_step``, ``loss``, ``sample`` and ``log_prob``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn


def check(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise ``ValueError`` naming a config ``field`` and its allowed range unless ``ok``.

    The model packages' configs validate with this (``runs`` turns it into a one-line
    user error); it lives here because ``generative`` imports nothing else of ours.
    """
    if not ok:
        raise ValueError(f"invalid {field}={value!r}: must be {allowed}")


def check_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    """:func:`check` that ``value`` is one of ``choices``, listing them."""
    choices = tuple(choices)
    check(value in choices, field, value, "one of " + ", ".join(map(str, choices)))


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step."""


def check_finite(metrics: Mapping[str, Any], step: int) -> None:
    """Stop with a message naming the step and the metric when a value is NaN or infinite.

    Every trainer calls it on its update's metrics: the generic loop in ``runs`` and the
    agents, whose updates happen inside an episode (so before the episode's log would).
    """
    for name, value in metrics.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            raise TrainingError(
                f"non-finite {name}={v} at step {step}; stopping (the last checkpoint is kept; "
                "lower the learning rate or check the data)"
            )


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, ema: float, updates: int) -> None:
    """Move the weight average toward ``model``: ``avg <- d avg + (1 - d) w`` with ``d =
    min(ema, (1 + k) / (10 + k))`` after ``k = updates`` updates (early updates move it
    further, so it does not stay at the initial weights); buffers are copied."""
    decay = min(ema, (1 + updates) / (10 + updates))
    for avg, p in zip(average.parameters(), model.parameters(), strict=True):
        avg.lerp_(p, 1 - decay)
    for avg, b in zip(average.buffers(), model.buffers(), strict=True):
        avg.copy_(b)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What one example looks like.

    kind: ``image`` (C, H, W), ``sequence`` (T,) of tokens, or ``vector`` (D,).
    shape: the shape of one example.
    levels: number of discrete values per dimension (17 for digits, 2 when binarised,
        the vocabulary size for text); ``None`` for continuous data.
    """

    kind: str
    shape: tuple[int, ...]
    levels: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        """Inverse of ``dataclasses.asdict`` (as stored in checkpoints)."""
        return cls(d["kind"], tuple(d["shape"]), d["levels"])

    @property
    def dims(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


class GenerativeModel(nn.Module):
    """Base class: override ``loss`` and ``sample``; ``log_prob`` where the family allows.

    ``Config`` is the family's frozen dataclass of hyper-parameters (its defaults are the
    benchmark size); ``SMOKE`` holds overrides that shrink it for smoke tests.
    """

    Config: ClassVar[type]
    SMOKE: ClassVar[dict[str, Any]] = {}

    def __init__(self, cfg: Any, spec: DataSpec):
        super().__init__()
        self.cfg = cfg
        self.spec = spec

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean training loss over ``batch`` and a dict of metrics to log."""
        raise NotImplementedError

    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` samples shaped ``(n, *spec.shape)``."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log-likelihood in nats: exact, or a bound / estimate where the family says."""
        raise NotImplementedError(f"{type(self).__name__} has no log_prob")

    def optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        return {"opt": torch.optim.Adam(self.parameters(), lr=lr)}

    def train_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
    ) -> dict[str, float]:
        """One optimisation step; families with several optimisers (GANs) override this."""
        opt = optimizers["opt"]
        opt.zero_grad(set_to_none=True)
        loss, metrics = self.loss(batch)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach()), **metrics}
