"""How good and how fast a world model is: open-loop error per horizon against baselines,
reward error, the ELBO, and batched imagination speed.

Open-loop prediction: the model filters the first ``context`` observations of a chunk, then
imagines the rest under the true actions without seeing another observation; the error at
horizon ``h`` compares the ``h``-th imagined observation with the real one. Two baselines
get the same chunks: repeating the last observed observation, and a linear model
``o_{t+1} = W [o_t, a_{t+1}, 1]`` fitted by least squares and rolled out open loop.
Errors are mean squared errors in observation units (pixels scaled to [0, 1], where
PSNR = ``10 log10(1 / MSE)`` is reported too).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import Tensor

from world_models.base import PIXEL_LEVELS, WorldModel
from world_models.replay import Chunk, ReplayBuffer

HORIZONS = (1, 5, 10, 25, 50)


class LinearDynamics:
    """``o_{t+1} = W [o_t, a_{t+1}, 1]`` fitted by (ridge-regularised) least squares."""

    def __init__(self, weight: Tensor):
        self.weight = weight

    @classmethod
    def fit(cls, transitions: Chunk, ridge: float = 1e-6) -> LinearDynamics:
        """Fit to transitions ``(N, 2, D)`` (see :meth:`ReplayBuffer.transitions`)."""
        obs = transitions.obs.float().flatten(2)
        x = torch.cat([obs[:, 0], transitions.action[:, 1], torch.ones(obs.shape[0], 1)], -1)
        gram = x.T @ x + ridge * x.shape[0] * torch.eye(x.shape[1])
        return cls(torch.linalg.solve(gram, x.T @ obs[:, 1]))

    def rollout(self, obs: Tensor, actions: Tensor) -> Tensor:
        """From ``obs`` ``(B, D)`` under ``actions`` ``(B, H, A)``: ``(B, H, D)``."""
        out = []
        ones = torch.ones(obs.shape[0], 1)
        for action in actions.unbind(1):
            obs = torch.cat([obs, action, ones], -1) @ self.weight
            out.append(obs)
        return torch.stack(out, 1)


def evaluation_chunks(
    episodes: ReplayBuffer, context: int, horizons: Sequence[int] = HORIZONS
) -> tuple[Chunk | None, list[int]]:
    """All chunks (stride: their length) long enough for the longest horizon that some
    episode allows, stacked ``(B, context + H, ...)``, and the horizons they cover."""
    longest = max(episodes.episode_lengths(), default=0)
    usable = [h for h in horizons if context + h <= longest]
    if not usable:
        return None, []
    length = context + max(usable)
    chunks = list(episodes.chunks(length))
    stacked = Chunk(
        *(torch.cat([getattr(c, f) for c in chunks]) for f in Chunk.__dataclass_fields__)
    )
    return stacked, usable


def _frame_errors(pred: Tensor, true: Tensor, pixels: bool) -> tuple[Tensor, Tensor | None]:
    """Per-example MSE ``(B, H)`` (pixels in [0, 1]) and, for pixels, PSNR ``(B, H)``."""
    scale = PIXEL_LEVELS if pixels else 1.0
    mse = ((pred.float() - true.float()) / scale).pow(2).flatten(2).mean(-1)
    psnr = -10 * torch.log10(mse.clamp_min(1e-10)) if pixels else None
    return mse, psnr


@torch.no_grad()
def open_loop_errors(
    model: WorldModel,
    episodes: ReplayBuffer,
    context: int,
    horizons: Sequence[int] = HORIZONS,
    linear: LinearDynamics | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Open-loop errors per horizon of ``model`` and the baselines on held-out ``episodes``.

    Keys: ``mse_h{h}``, ``mse_h{h}_repeat``, ``mse_h{h}_linear`` (with ``linear``),
    ``psnr_h{h}`` and ``psnr_h{h}_repeat`` for pixels, ``reward_mse`` (over every imagined
    step) and ``reward_mse_mean`` (predicting the mean reward, for scale). Horizons longer
    than every episode allows are left out.
    """
    chunks, usable = evaluation_chunks(episodes, context, horizons)
    if chunks is None:
        return {}
    pixels = model.pixels
    parts: dict[str, list[Tensor]] = {}

    def add(name: str, values: Tensor | None) -> None:
        if values is not None:
            parts.setdefault(name, []).append(values.cpu())

    n = chunks.obs.shape[0]
    for first in range(0, n, batch_size):
        batch = chunks[first : first + batch_size]
        true = batch.obs[:, context:]
        pred, reward = model.open_loop(batch.obs, batch.action, context)
        for name, values in zip(("model", "model_psnr"), _frame_errors(pred.cpu(), true, pixels)):
            add(name, values)
        last = batch.obs[:, context - 1 : context].expand_as(true)
        for name, values in zip(("repeat", "repeat_psnr"), _frame_errors(last, true, pixels)):
            add(name, values)
        if linear is not None and not pixels:
            start_obs = batch.obs[:, context - 1].float().flatten(1)
            lin = linear.rollout(start_obs, batch.action[:, context:]).view_as(true)
            add("linear", _frame_errors(lin, true, pixels)[0])
        add("reward_err", (reward.cpu() - batch.reward[:, context:]).pow(2))
        add("reward_true", batch.reward[:, context:])
    cat = {k: torch.cat(v) for k, v in parts.items()}  # each (B, H)
    out: dict[str, float] = {}
    for h in usable:
        out[f"mse_h{h}"] = float(cat["model"][:, h - 1].mean())
        out[f"mse_h{h}_repeat"] = float(cat["repeat"][:, h - 1].mean())
        if "linear" in cat:
            out[f"mse_h{h}_linear"] = float(cat["linear"][:, h - 1].mean())
        if pixels:
            out[f"psnr_h{h}"] = float(cat["model_psnr"][:, h - 1].mean())
            out[f"psnr_h{h}_repeat"] = float(cat["repeat_psnr"][:, h - 1].mean())
    out["reward_mse"] = float(cat["reward_err"].mean())
    rewards = cat["reward_true"]
    out["reward_mse_mean"] = float((rewards - rewards.mean()).pow(2).mean())
    out["chunks"] = float(n)
    return out


@torch.no_grad()
def mean_elbo(model: WorldModel, episodes: ReplayBuffer, length: int, limit: int = 256) -> float:
    """The model's ELBO (the ensemble: exact log-likelihood) per observation, nats, averaged
    over up to ``limit`` chunks of ``length`` rows of ``episodes``."""
    chunks = [c for _, c in zip(range(limit), episodes.chunks(length), strict=False)]
    if not chunks:
        return math.nan
    values = [model.elbo(c) for c in chunks]
    return float(torch.cat(values).mean())


@torch.no_grad()
def imagination_speed(
    model: WorldModel,
    candidates: int = 1000,
    horizon: int = 15,
    iterations: int = 5,
    repeats: int = 3,
) -> dict[str, float]:
    """Time planning-style imagination: ``iterations`` calls of ``imagine`` for ``candidates``
    action sequences of ``horizon`` steps from one state, each followed by the reward head
    (as a CEM planner does per action). Returns the best of ``repeats`` as
    ``plan_ms`` (all iterations) and ``latent_steps_per_s``."""
    model.eval()
    state = model.initial(1).repeat_interleave(candidates)
    actions = torch.rand(candidates, horizon, model.action_dim, device=model.device) * 2 - 1

    def plan() -> None:
        for _ in range(iterations):
            model.reward(model.imagine(state, actions))

    plan()  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        plan()
        best = min(best, time.perf_counter() - start)
    return {
        "plan_ms": best * 1e3,
        "latent_steps_per_s": candidates * horizon * iterations / best,
    }
