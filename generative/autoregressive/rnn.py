"""LSTM and GRU models over tokens: characters, 1-D signals, image pixels or image rows.

``mode="pixel"`` reads one token per step (fully autoregressive). ``mode="row"`` (images
only) reads one image row per step and predicts every value of the next row from the rows
above, independently given them: a weaker but ``W * C`` times shorter recurrence.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from generative.autoregressive.base import (
    AutoregressiveModel,
    check,
    check_positive,
    sample_categorical,
)
from generative.base import DataSpec
from generative.data import DataError

MODES = ("pixel", "row")


@dataclasses.dataclass(frozen=True)
class RNNConfig:
    """Sizes of an LSTM / GRU model (defaults: the digits benchmark)."""

    hidden: int = 192
    """Hidden units per recurrent layer."""
    layers: int = 2
    """Stacked recurrent layers."""
    embed: int = 32
    """Embedding size of each input token."""
    dropout: float = 0.3
    """Dropout between layers and before the output layer."""
    mode: str = "pixel"
    """pixel: one token per step | row: one image row per step (images only)."""

    def __post_init__(self) -> None:
        check_positive(self, "hidden", "layers", "embed")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        check(self.mode in MODES, "mode", self.mode, "pixel or row")


class RNNModel(AutoregressiveModel):
    """A recurrent network reading tokens (or rows) in order; base of LSTM and GRU."""

    UNIT: ClassVar[type[nn.RNNBase]]
    Config = RNNConfig
    SMOKE: ClassVar[dict] = {"hidden": 16, "layers": 1, "embed": 8}
    TRAIN: ClassVar[dict] = {"steps": 800, "batch_size": 64, "lr": 2e-3, "eval_every": 100}

    def __init__(self, cfg: RNNConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        if cfg.mode == "row" and spec.kind != "image":
            raise DataError("mode=row needs image data")
        # One step reads `width` tokens: 1, or a whole image row of W * C values.
        self.width = spec.shape[0] * spec.shape[2] if cfg.mode == "row" else 1
        self.steps = self.length // self.width
        self.start = self.levels  # an extra embedding index marks "nothing before"
        self.embed = nn.Embedding(self.levels + 1, cfg.embed)
        self.rnn = self.UNIT(
            cfg.embed * self.width,
            cfg.hidden,
            cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, self.width * self.levels)

    def inputs(self, t: Tensor) -> Tensor:
        """Tokens ``(B, D)`` -> step inputs ``(B, S, width * embed)``, shifted by one step."""
        b = t.shape[0]
        steps = t.view(b, -1, self.width)
        first = torch.full_like(steps[:, :1], self.start)
        shifted = torch.cat([first, steps[:, :-1]], 1)
        return self.embed(shifted).flatten(2)

    def outputs(self, h: Tensor) -> Tensor:
        """Hidden states ``(B, S, hidden)`` -> logits ``(B, S * width, L)``."""
        return self.head(self.drop(h)).view(h.shape[0], -1, self.levels)

    def logits(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(self.inputs(self.tokens(x)))
        return self.outputs(h)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` samples ``(n, *spec.shape)``, carrying the recurrent state (``S`` steps)."""
        device = self.head.weight.device
        prev = torch.full((n, self.width), self.start, dtype=torch.long, device=device)
        state = None
        rows = []
        for _ in range(self.steps):
            h, state = self.rnn(self.embed(prev).flatten(1)[:, None], state)
            logits = self.outputs(h).reshape(n * self.width, self.levels)
            prev = sample_categorical(logits, temperature).view(n, self.width)
            rows.append(prev)
        return self.untokens(torch.cat(rows, 1))

    @torch.no_grad()
    def generate(self, prompt: Tensor, length: int, temperature: float = 1.0) -> Tensor:
        """Continue ``prompt`` ``(B, P)`` by ``length`` tokens, with unbounded context."""
        if self.spec.kind != "sequence":
            raise DataError("generate continues sequences; use sample for images")
        b = prompt.shape[0]
        start = torch.full((b, 1), self.start, dtype=torch.long, device=prompt.device)
        h, state = self.rnn(self.embed(torch.cat([start, prompt.long()], 1)))
        out = [prompt]
        for i in range(length):
            nxt = sample_categorical(self.outputs(h[:, -1:])[:, 0], temperature)
            out.append(nxt[:, None])
            if i + 1 < length:
                h, state = self.rnn(self.embed(nxt[:, None]), state)
        return torch.cat(out, 1)


class LSTM(RNNModel):
    """LSTM over tokens (see :mod:`generative.autoregressive.rnn`)."""

    UNIT = nn.LSTM


class GRU(RNNModel):
    """GRU over tokens (see :mod:`generative.autoregressive.rnn`)."""

    UNIT = nn.GRU
