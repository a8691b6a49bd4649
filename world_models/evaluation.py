"""How good and how fast a world model is: open-loop error per horizon against baselines,
reward error, the ELBO, and batched imagination speed.

Open-loop prediction: the model filters an episode from its start up to step ``t``, then
imagines ``h`` steps under the true actions without seeing another observation; the error
at horizon ``h`` compares the last imagined observation with the real ``o_{t+h}``. Two baselines
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

from world_models.base import PIXEL_LEVELS, WorldModel, imagination_precision
from world_models.replay import Chunk, ReplayBuffer
from world_models.state import LatentState

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


def _frame_errors(pred: Tensor, true: Tensor, pixels: bool) -> tuple[Tensor, Tensor | None]:
    """Per-example MSE ``(B,)`` (pixels in [0, 1]) and, for pixels, PSNR ``(B,)`` of
    observations ``(B, *shape)``."""
    scale = PIXEL_LEVELS if pixels else 1.0
    mse = ((pred.float() - true.float()) / scale).pow(2).flatten(1).mean(-1)
    psnr = -10 * torch.log10(mse.clamp_min(1e-10)) if pixels else None
    return mse, psnr


@torch.no_grad()
def _imagine_last(
    model: WorldModel, start: LatentState, actions: Tensor, particles: int
) -> tuple[Tensor, Tensor]:
    """The last imagined observation ``(N, *shape)`` and every imagined reward ``(N, H)``
    from ``start`` ``(N, .)`` under ``actions`` ``(N, H, A)``: along the mode, or averaged
    over ``particles`` sampled rollouts."""
    if particles == 0:
        future = model.imagine(start, actions, sample=False)
        return model.decode(future[:, -1]), model.reward(future)
    n = actions.shape[0]
    future = model.imagine(
        start.repeat_interleave(particles), actions.repeat_interleave(particles, 0)
    )
    last = model.decode(future[:, -1]).unflatten(0, (n, particles)).mean(1)
    return last, model.reward(future).unflatten(0, (n, particles)).mean(1)


@torch.no_grad()
def open_loop_errors(
    model: WorldModel,
    episodes: ReplayBuffer,
    context: int,
    horizons: Sequence[int] = HORIZONS,
    linear: LinearDynamics | None = None,
    particles: int = 0,
    limit: int = 1000,
) -> dict[str, float]:
    """Open-loop errors per horizon of ``model`` and the baselines on held-out ``episodes``.

    The model filters each episode from its start, as an agent does; from the state at
    every step ``t >= context - 1`` it imagines ``h`` steps under the true actions and its
    last prediction is compared with ``o_{t+h}`` (at most ``limit`` starts per horizon,
    spread evenly over the episodes). ``particles`` as in :meth:`WorldModel.open_loop`.

    Keys: ``mse_h{h}``, ``mse_h{h}_repeat``, ``mse_h{h}_linear`` (with ``linear``),
    ``psnr_h{h}`` and ``psnr_h{h}_repeat`` for pixels (mean per-frame PSNR), ``starts_h{h}``,
    and ``reward_mse`` over every imagined step of the longest horizon with
    ``reward_mse_mean`` (predicting the mean reward) for scale. Horizons longer than every
    episode allows are left out.
    """
    pixels = model.pixels
    stored = list(episodes.episodes())
    per_episode = max(1, -(-limit // max(1, len(stored))))
    parts: dict[str, list[Tensor]] = {}
    for episode in stored:
        length = episode.shape[1]
        if length < context + 1:
            continue
        states = model.observe(episode.obs, episode.action, sample=False)[0]  # (T, .)
        obs, action, reward = episode.obs[0], episode.action[0], episode.reward[0]
        for h in horizons:
            count = length - h - (context - 1)
            if count < 1:
                break
            ts = torch.linspace(context - 1, length - h - 1, min(count, per_episode)).round().long()
            ts = ts.unique()
            windows = action[1:].unfold(0, h, 1).movedim(-1, 1)[ts]  # (N, h, A)
            pred, pred_reward = _imagine_last(model, states[ts], windows, particles)
            true = obs[ts + h]
            scores = {
                "": _frame_errors(pred.cpu(), true, pixels),
                "_repeat": _frame_errors(obs[ts], true, pixels),
            }
            if linear is not None and not pixels:
                lin = linear.rollout(obs[ts].float().flatten(1), windows)[:, -1].view_as(true)
                scores["_linear"] = _frame_errors(lin, true, pixels)
            for suffix, (mse, psnr) in scores.items():
                parts.setdefault(f"mse_h{h}{suffix}", []).append(mse)
                if psnr is not None:
                    parts.setdefault(f"psnr_h{h}{suffix}", []).append(psnr)
            true_reward = reward[1:].unfold(0, h, 1)[ts]  # (N, h)
            parts.setdefault(f"reward_err_h{h}", []).append(
                (pred_reward.cpu() - true_reward).pow(2)
            )
            parts.setdefault(f"reward_true_h{h}", []).append(true_reward)
    out: dict[str, float] = {}
    for h in horizons:
        if f"mse_h{h}" not in parts:
            continue
        for key in (k for k in parts if k.endswith((f"_h{h}", f"_h{h}_repeat", f"_h{h}_linear"))):
            if key.startswith(("mse", "psnr")):
                out[key] = float(torch.cat(parts[key]).mean())
        out[f"starts_h{h}"] = float(sum(p.shape[0] for p in parts[f"mse_h{h}"]))
        rewards = torch.cat(parts[f"reward_true_h{h}"])
        out["reward_mse"] = float(torch.cat(parts[f"reward_err_h{h}"]).mean())
        out["reward_mse_mean"] = float((rewards - rewards.mean()).pow(2).mean())
    return out


@torch.no_grad()
def mean_elbo(
    model: WorldModel, episodes: ReplayBuffer, length: int, limit: int = 256, batch_size: int = 32
) -> float:
    """The model's ELBO (the ensemble: exact log-likelihood) per observation, nats, averaged
    over up to ``limit`` chunks of ``length`` rows of ``episodes``."""
    chunks = episodes.chunks(length, limit=limit)
    if chunks is None:
        return math.nan
    values = [model.elbo(chunks[i : i + batch_size]) for i in range(0, chunks.shape[0], batch_size)]
    return float(torch.cat(values).mean())


@torch.no_grad()
def imagination_speed(
    model: WorldModel,
    candidates: int = 1000,
    horizon: int = 15,
    iterations: int = 5,
    repeats: int = 3,
    precision: str = "auto",
) -> dict[str, float]:
    """Time planning-style imagination: ``iterations`` calls of ``imagine`` for ``candidates``
    action sequences of ``horizon`` steps from one state, each followed by the reward head
    (as a CEM planner does per action), in the agents' ``precision`` (see
    :func:`~world_models.base.imagination_precision`). Returns the best of ``repeats`` as
    ``plan_ms`` (all iterations) and ``latent_steps_per_s``."""
    model.eval()
    state = model.initial(1).repeat_interleave(candidates)
    actions = torch.rand(candidates, horizon, model.action_dim, device=model.device) * 2 - 1

    def plan() -> None:
        for _ in range(iterations):
            with imagination_precision(model.device, precision):
                model.reward(model.imagine(state, actions))
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)

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
