"""What every world model shares: observation scaling, the interface, one training step.

A world model is an ``nn.Module`` built from its frozen ``Config``, the
:class:`~generative.base.DataSpec` of one observation (``image`` ``(3, H, W)`` uint8
pixels, or ``vector`` ``(D,)`` floats) and the action size. Time runs along dimension 1,
and at every index ``t`` the action is the one that *led to* observation ``t`` (zero at an
episode's start), as stored by :class:`~world_models.replay.ReplayBuffer`; likewise
``imagine`` returns the states that the given actions lead to, one per action.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from generative.base import DataSpec, check, check_choice
from world_models.replay import Chunk
from world_models.state import LatentState

PIXEL_LEVELS = 255.0
PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def native_bfloat16(device_type: str) -> bool:
    """Whether ``device_type`` multiplies bfloat16 matrices in hardware: CUDA GPUs that
    support it, CPUs with AVX512-BF16 or AMX (elsewhere a CPU emulates it, slower than
    float32)."""
    if device_type == "cuda":
        # Not emulated: by default is_bf16_supported also says yes on pre-Ampere GPUs.
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def imagines_in_bfloat16(device: torch.device, precision: str) -> bool:
    """Whether ``precision`` (``auto``: where :func:`native_bfloat16`) means bfloat16 on
    ``device``."""
    check_choice("precision", precision, PRECISIONS)
    return precision == "bfloat16" or (precision == "auto" and native_bfloat16(device.type))


def imagination_precision(
    device: torch.device, precision: str
) -> contextlib.AbstractContextManager:
    """The context in which to imagine without gradients: float32, or an autocast to
    bfloat16 (``auto``: bfloat16 where :func:`native_bfloat16`).

    Planning ranks candidate futures whose sampled noise is far larger than bfloat16's
    rounding (about 0.4%); on a CPU with AVX512-BF16 its products run twice as fast."""
    if not imagines_in_bfloat16(device, precision):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The lower precision of an autocast enabled on ``device``, else ``None``."""
    if not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)


class WorldModel(nn.Module):
    """Base class: subclasses implement ``initial``, ``observe``, ``imagine``, ``decode``,
    ``reward``, ``continuation`` and ``loss``.

    Vector observations are standardised with statistics held as buffers (saved with the
    weights, so a loaded model sees the same inputs); :meth:`fit_normalizer` sets them from
    data before training. Pixels are mapped from ``[0, 255]`` to ``[-0.5, 0.5]``.
    """

    Config: ClassVar[type]
    SMOKE: ClassVar[dict[str, Any]] = {}
    """Config overrides that shrink the model for smoke runs."""
    STATE: ClassVar[dict[str, Any]] = {}
    """Config overrides for vector (state) observations; the defaults suit pixels."""
    TRAIN: ClassVar[dict[str, Any]] = {}
    """Default training budget: steps, batch_size, seq_len, lr."""

    def __init__(self, cfg: Any, spec: DataSpec, action_dim: int):
        super().__init__()
        check(spec.kind in ("image", "vector"), "observation kind", spec.kind, "image or vector")
        self.cfg = cfg
        self.spec = spec
        self.action_dim = int(action_dim)
        shape = (1,) if self.pixels else spec.shape
        self.register_buffer("obs_mean", torch.zeros(shape))
        self.register_buffer("obs_std", torch.ones(shape))

    @property
    def pixels(self) -> bool:
        return self.spec.kind == "image"

    @property
    def device(self) -> torch.device:
        return self.obs_mean.device

    # -- observations -----------------------------------------------------------------------
    def fit_normalizer(self, transitions: Chunk) -> None:
        """Set the vector statistics from transitions ``(N, 2, ...)`` (no-op for pixels); see
        :meth:`~world_models.replay.ReplayBuffer.transitions`."""
        if self.pixels:
            return
        obs = transitions.obs.reshape(-1, *self.spec.shape).float()
        self.obs_mean.copy_(obs.mean(0))
        # A floor keeps constant features (a fixed target) from blowing up.
        if obs.shape[0] > 1:
            self.obs_std.copy_(obs.std(0).clamp_min(1e-2))

    def preprocess(self, obs: Tensor) -> Tensor:
        """Observations ``(..., *shape)`` as stored to network inputs of the same shape."""
        obs = obs.to(self.device)
        if self.pixels:
            return obs.float() / PIXEL_LEVELS - 0.5
        return (obs.float() - self.obs_mean) / self.obs_std

    def postprocess(self, x: Tensor) -> Tensor:
        """Network outputs back to observation units (pixels as floats in ``[0, 255]``)."""
        if self.pixels:
            return ((x + 0.5) * PIXEL_LEVELS).clamp(0, PIXEL_LEVELS)
        return x * self.obs_std + self.obs_mean

    # -- the interface ----------------------------------------------------------------------
    def initial(self, batch_size: int) -> LatentState:
        """The state before any observation, ``(B, .)``."""
        raise NotImplementedError

    def observe(
        self,
        obs: Tensor,
        action: Tensor,
        state: LatentState | None = None,
        sample: bool = True,
        is_first: Tensor | None = None,
    ) -> LatentState:
        """Filter ``obs`` ``(B, T, *shape)`` given ``action`` ``(B, T, A)`` (the action that
        led to each observation); ``state`` ``(B, .)`` is the state before the first one
        (default :meth:`initial`). Returns the states ``(B, T, .)``. ``sample=False`` takes
        the posterior's mode where the model samples it. ``is_first`` ``(B, T)`` marks rows
        that start an episode (chunks that run across episodes): the filter starts afresh
        there, as from :meth:`initial`."""
        raise NotImplementedError

    def observe_step(self, state: LatentState | None, action: Tensor, obs: Tensor) -> LatentState:
        """One filtering step: ``state`` ``(B, .)``, ``action`` ``(B, A)``, ``obs``
        ``(B, *shape)`` -> the state ``(B, .)`` after seeing ``obs``."""
        return self.observe(obs[:, None], action[:, None], state)[:, 0]

    def imagine(self, state: LatentState, actions: Tensor, sample: bool = True) -> LatentState:
        """Roll ``state`` ``(B, .)`` forward under ``actions`` ``(B, H, A)`` without
        observations; returns the ``H`` states ``(B, H, .)`` the actions lead to.
        ``sample=False`` follows the mode (or mean) instead of drawing."""
        raise NotImplementedError

    def decode(self, states: LatentState) -> Tensor:
        """Expected observations ``(*batch, *shape)`` in observation units."""
        raise NotImplementedError

    def reward(self, states: LatentState) -> Tensor:
        """Expected reward that came with each state, ``(*batch,)``."""
        raise NotImplementedError

    def continuation(self, states: LatentState) -> Tensor:
        """Probability that the episode goes on after each state, ``(*batch,)``."""
        raise NotImplementedError

    def loss(self, batch: Chunk) -> tuple[Tensor, dict[str, float]]:
        """Mean training loss on a batch of chunks and a dict of metrics to log."""
        raise NotImplementedError

    def elbo(self, batch: Chunk) -> Tensor:
        """Evidence lower bound (or exact log-likelihood) per observation in nats, one value
        per chunk ``(B,)`` (the ensemble: one per transition)."""
        raise NotImplementedError

    # -- derived ----------------------------------------------------------------------------
    @torch.no_grad()
    def open_loop(
        self, obs: Tensor, action: Tensor, context: int, particles: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Predict ``obs`` ``(B, T, *shape)`` past the first ``context`` steps open loop.

        The model filters the first ``context`` observations (posterior modes), then
        imagines under the true actions ``action[:, context:]``: along the mode with
        ``particles=0``, else the mean over that many sampled rollouts (the predictive mean,
        which is what minimises the expected squared error once the future is uncertain).
        Returns the predicted observations ``(B, T - context, *shape)`` and rewards
        ``(B, T - context)``.
        """
        start = self.observe(obs[:, :context], action[:, :context], sample=False)[:, -1]
        future_actions = action[:, context:].to(self.device)
        if particles == 0:
            future = self.imagine(start, future_actions, sample=False)
            return self.decode(future), self.reward(future)
        b = future_actions.shape[0]
        future = self.imagine(
            start.repeat_interleave(particles), future_actions.repeat_interleave(particles, 0)
        )
        pred = self.decode(future).unflatten(0, (b, particles)).mean(1)
        return pred, self.reward(future).unflatten(0, (b, particles)).mean(1)

    def optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        return {"opt": torch.optim.Adam(self.parameters(), lr=lr, eps=1e-6)}

    def train_step(
        self, batch: Chunk, optimizers: dict[str, torch.optim.Optimizer], clip: float = 100.0
    ) -> dict[str, float]:
        """One optimisation step with gradient-norm clipping; returns the metrics."""
        opt = optimizers["opt"]
        opt.zero_grad(set_to_none=True)
        loss, metrics = self.loss(batch)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.parameters(), clip)
        opt.step()
        return {"losses/total": float(loss.detach()), **metrics, "grad_norm": float(norm)}
