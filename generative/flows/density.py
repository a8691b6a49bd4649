"""A vector normalising flow as a plain density module: fit from examples, exact log p."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from generative.base import DataSpec
from generative.density import fit_density
from generative.flows.glow import Glow
from generative.flows.maf import IAF, MAF
from generative.flows.model import FlowModel
from generative.flows.realnvp import RealNVP

FLOWS: dict[str, type[FlowModel]] = {"realnvp": RealNVP, "glow": Glow, "maf": MAF, "iaf": IAF}


class FlowDensity(nn.Module):
    """An exact density over vectors ``(B, D)``.

    ``kind`` picks the flow (``realnvp``, ``glow``, ``maf``, ``iaf``); ``options`` are that
    flow's ``Config`` fields (e.g. ``hidden=64, couplings=6``). A new RealNVP or MAF is
    the standard normal (its layers start as the identity).
    """

    def __init__(self, dim: int, kind: str = "realnvp", **options: Any):
        super().__init__()
        if kind not in FLOWS:
            raise ValueError(f"invalid kind={kind!r}: must be one of {', '.join(FLOWS)}")
        cls = FLOWS[kind]
        self.dim = dim
        self.model = cls(cls.Config(**options), DataSpec("vector", (dim,)))

    def log_prob(self, x: Tensor) -> Tensor:
        """``(B, D) -> (B,)`` exact log-density in nats (differentiable in ``x`` and weights)."""
        return self.model.log_prob(x)

    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``(n, D)`` draws; ``temperature < 1`` concentrates them."""
        return self.model.sample(n, temperature)

    def fit(
        self, examples: Tensor, steps: int = 2000, batch_size: int = 256, lr: float = 1e-3
    ) -> list[float]:
        """Maximum likelihood on ``examples (N, D)``; returns the per-step NLL (nats)."""
        return fit_density(self.model, examples, steps, batch_size, lr)
