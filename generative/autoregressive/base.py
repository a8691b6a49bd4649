"""What every autoregressive model shares: the token order, the exact likelihood, sampling.

An example is read as ``D`` tokens with values in ``[0, L)``: a sequence ``(T,)`` as is, an
image ``(C, H, W)`` in raster order with the channels of a pixel last, i.e. flattened from
``(H, W, C)``. A model only supplies :meth:`AutoregressiveModel.logits`, whose entry ``i``
may depend on tokens ``< i`` alone; likelihood, loss and sampling follow from it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from generative.base import DataSpec, GenerativeModel, check
from generative.data import DataError


def check_positive(cfg: Any, *fields: str) -> None:
    """Check that each named field of ``cfg`` is > 0."""
    for name in fields:
        check(getattr(cfg, name) > 0, name, getattr(cfg, name), "> 0")


class AutoregressiveModel(GenerativeModel):
    """Base of the family: exact ``log_prob``, per-dimension loss, sampling with temperature.

    ``KINDS`` lists the data kinds a model accepts; data must be discrete (``spec.levels``).
    """

    KINDS: ClassVar[tuple[str, ...]] = ("image", "sequence")
    BENCHMARKS: ClassVar[tuple[str, ...]] = ("digits",)

    def __init__(self, cfg: Any, spec: DataSpec):
        super().__init__(cfg, spec)
        if spec.kind not in self.KINDS:
            raise DataError(f"{type(self).__name__} models {' or '.join(self.KINDS)} data")
        if spec.levels is None:
            raise DataError(f"{type(self).__name__} needs discrete data (integer levels)")
        self.levels = spec.levels
        self.length = spec.dims

    # -- token order --------------------------------------------------------------------------
    def tokens(self, x: Tensor) -> Tensor:
        """Data ``(B, *spec.shape)`` -> tokens ``(B, D)`` in the model's order."""
        if self.spec.kind == "image":
            return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return x.reshape(x.shape[0], -1)

    def untokens(self, t: Tensor) -> Tensor:
        """Tokens ``(B, D)`` -> data ``(B, *spec.shape)``."""
        if self.spec.kind == "image":
            c, h, w = self.spec.shape
            return t.view(t.shape[0], h, w, c).permute(0, 3, 1, 2).contiguous()
        return t.view(t.shape[0], *self.spec.shape)

    # -- what a model supplies ----------------------------------------------------------------
    def logits(self, x: Tensor) -> Tensor:
        """Logits ``(B, D, L)``: token ``i`` given tokens ``< i`` of ``x`` ``(B, *shape)``."""
        raise NotImplementedError

    # -- derived ------------------------------------------------------------------------------
    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, ``(B,)``."""
        logits = self.logits(x)
        target = self.tokens(x)
        nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        return -nll.sum(1)

    def loss(self, batch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Mean negative log-likelihood in nats per dimension; logs ``nll`` (nats) and ``bpd``."""
        nll = -self.log_prob(batch)
        per_dim = nll.mean() / self.length
        return per_dim, {
            "nll": float(nll.mean().detach()),
            "bpd": float(per_dim.detach()) / math.log(2),
        }

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``(n, *spec.shape)``, one token at a time (``D`` forward passes)."""
        device = next(self.parameters()).device
        t = torch.zeros(n, self.length, dtype=torch.long, device=device)
        for i in range(self.length):
            logits = self.logits(self.untokens(t))[:, i]
            t[:, i] = sample_categorical(logits, temperature)
        return self.untokens(t)

    @torch.no_grad()
    def generate(self, prompt: Tensor, length: int, temperature: float = 1.0) -> Tensor:
        """Continue token sequences ``prompt`` ``(B, P)`` by ``length`` tokens: ``(B, P + length)``.

        Sequence data only. The model sees at most its trained context ``T``: the last
        ``T - 1`` tokens and a placeholder for the one being drawn.
        """
        if self.spec.kind != "sequence":
            raise DataError("generate continues sequences; use sample for images")
        out = prompt.long()
        context = self.length
        for _ in range(length):
            window = out[:, -(context - 1) :] if context > 1 else out[:, :0]
            k = window.shape[1]
            padded = torch.cat([window, window.new_zeros(out.shape[0], 1)], 1)
            logits = self.window_logits(padded)[:, k]
            out = torch.cat([out, sample_categorical(logits, temperature)[:, None]], 1)
        return out

    def window_logits(self, tokens: Tensor) -> Tensor:
        """Logits ``(B, K, L)`` for a token window ``(B, K)`` with ``K <= T`` (sequences)."""
        return self.logits(tokens)


def sample_categorical(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """One draw per row of ``logits`` ``(B, L)`` at ``temperature`` (0: the most likely value)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    return torch.multinomial(probs, 1).squeeze(-1)


def shift_right(tokens: Tensor, start: int) -> Tensor:
    """Tokens ``(B, D)`` -> ``(B, D)`` inputs: ``start`` then tokens ``0 .. D-2``."""
    first = torch.full_like(tokens[:, :1], start)
    return torch.cat([first, tokens[:, :-1]], 1)
