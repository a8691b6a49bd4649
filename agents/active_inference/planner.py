"""Sampling-based planners over action sequences: CEM and MPPI.

Both minimise a black-box ``cost(actions) -> costs`` of ``N`` candidate sequences
``(N, H, A) -> (N,)``, evaluated in one batched call per iteration (the world model
imagines all candidates at once), so they know nothing of world models or expected free
energy and can be tested on any function. Actions live in a box (``[-1, 1]`` by default);
a plan is warm-started from the previous one shifted by one step, and may be given
proposals (e.g. an amortised policy's sequences) that every iteration scores beside its draws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from generative.base import check as _check
from generative.base import check_choice as _check_choice

PLANNERS = ("cem", "mppi")

Cost = Callable[[Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class PlannerConfig:
    """A sampling planner (defaults: PETS-style CEM for state tasks)."""

    kind: str = "cem"
    """cem (refit a Gaussian to the elites) | mppi (exponentially weighted average)."""
    horizon: int = 15
    """Steps H of each candidate action sequence."""
    candidates: int = 1000
    """Candidate sequences N sampled per iteration."""
    iterations: int = 5
    """Refinement iterations per plan."""
    elites: int = 100
    """CEM: lowest-cost candidates the Gaussian is refitted to."""
    keep_elites: bool = False
    """CEM: carry each iteration's elites into the next iteration's candidates, scored
    again (as iCEM does), so that a refit cannot lose a good sequence. Off by default: on
    a fixed inverted-pendulum model it rescued episode starts where the elites' mean was
    far worse than doing nothing, but trained with it from scratch (3 seeds, 3,000 env
    steps) the agent scored 63 against 698 without it."""
    noise_beta: float = 0.0
    """Temporal colour of the candidates' sampling noise along the horizon: power spectrum
    ``1 / f^beta``; 0 is white noise (PETS), 2 is smooth, slowly varying sequences (iCEM
    used 2-3.5): smooth optima over long horizons are then found far more easily."""
    temperature: float = 0.5
    """MPPI: λ of the weights ``exp(-(c - min c) / (λ std c))``, in units of the costs'
    spread across candidates, so that one value suits every objective's scale."""
    momentum: float = 0.1
    """Share of the previous mean and std kept at each refit (PETS' alpha)."""
    init_std: float = 0.5
    """Std of the first iteration's sampling distribution (per action dimension)."""
    min_std: float = 0.05
    """Floor on the sampling std, so that a plan never stops exploring entirely."""

    def __post_init__(self) -> None:
        _check_choice("planner", self.kind, PLANNERS)
        for name in ("horizon", "candidates", "iterations", "elites"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        _check(self.elites <= self.candidates, "elites", self.elites, "<= candidates")
        _check(
            self.kind == "cem" or not self.keep_elites,
            "keep_elites",
            True,
            "false unless planner=cem",
        )
        _check(self.noise_beta >= 0, "noise_beta", self.noise_beta, ">= 0")
        _check(self.temperature > 0, "temperature", self.temperature, "> 0")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _check(self.init_std > 0, "init_std", self.init_std, "> 0")
        _check(0 <= self.min_std <= self.init_std, "min_std", self.min_std, "in [0, init_std]")


@dataclasses.dataclass(frozen=True)
class Plan:
    """A planner's result: the sequence to execute and the search distribution.

    mean, std: ``(H, A)``; ``mean[0]`` is the action to take now.
    cost: the cost of the mean sequence's best estimate (the lowest cost seen in the last
    iteration).
    """

    mean: Tensor
    std: Tensor
    cost: float


def colored_noise(
    shape: tuple[int, ...],
    beta: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Standard-normal noise ``(N, H, A)`` whose power spectrum along ``H`` is ``1 / f^beta``
    (``beta = 0``: white, exactly ``torch.randn``). Shaped in the frequency domain, then
    scaled by its exact std, so every entry has variance 1 whatever ``beta`` and ``H``."""
    if beta == 0:
        return torch.randn(shape, generator=generator, device=device)
    n, steps, dims = shape
    freqs = torch.fft.rfftfreq(steps, device=device)
    freqs[0] = 1.0 / steps  # the mean's power: that of the longest period the horizon holds
    scale = freqs ** (-beta / 2)
    parts = torch.randn((2, n, dims, len(freqs)), generator=generator, device=device)
    # x_t = (1/H) sum_k X_k e^(2 pi i k t / H). Each frequency's power is split between a
    # real and an imaginary part, except for the mean (and, with an even H, the Nyquist
    # term), which is real and takes all of it: as the DFT of white noise does. A real term
    # then adds variance 2 s^2 / H^2, a conjugate pair 2 Re(X_k e^(..)) adds 4 s^2 / H^2.
    weight = torch.full_like(scale, 4.0)
    real = [0, -1] if steps % 2 == 0 else [0]
    parts[0, ..., real] *= 2**0.5
    parts[1, ..., real] = 0
    weight[real] = 2.0
    signal = torch.fft.irfft(torch.complex(parts[0], parts[1]) * scale, n=steps)
    std = (weight * scale**2).sum().sqrt() / steps
    return (signal / std).transpose(1, 2)


class SamplingPlanner:
    """CEM or MPPI, per ``cfg.kind``, over actions of size ``action_dim`` in ``[low, high]``."""

    def __init__(
        self, cfg: PlannerConfig, action_dim: int, low: float = -1.0, high: float = 1.0
    ) -> None:
        _check(low < high, "action bounds", (low, high), "low < high")
        self.cfg = cfg
        self.action_dim = int(action_dim)
        self.low, self.high = float(low), float(high)

    def initial_mean(self, device: torch.device | str = "cpu") -> Tensor:
        """The centre of the action box, ``(H, A)``."""
        centre = 0.5 * (self.low + self.high)
        return torch.full((self.cfg.horizon, self.action_dim), centre, device=device)

    def shift(self, mean: Tensor) -> Tensor:
        """Warm start: ``mean`` ``(H, A)`` advanced one step, the last step repeated."""
        return torch.cat([mean[1:], mean[-1:]], 0)

    def plan(
        self,
        cost: Cost,
        mean: Tensor | None = None,
        generator: torch.Generator | None = None,
        proposals: Tensor | None = None,
    ) -> Plan:
        """Minimise ``cost`` ``(N, H, A) -> (N,)`` starting from ``mean`` ``(H, A)`` (default:
        the box's centre). Candidate 0 of every iteration is the current mean itself, so a
        good warm start is never lost, followed by ``proposals`` ``(K, H, A)`` (scored in
        every iteration, so they compete with the draws for the elites, as TD-MPC's policy
        samples do) and the last iteration's elites with ``keep_elites``; draws fill the
        rest. Non-finite costs count as infinitely bad."""
        cfg = self.cfg
        mean = self.initial_mean() if mean is None else mean.clone()
        std = torch.full_like(mean, cfg.init_std)
        n = cfg.candidates
        best = float("inf")
        fixed = mean.new_empty((0, *mean.shape))
        if proposals is not None:
            _check(
                proposals.shape[1:] == mean.shape and len(proposals) < n,
                "proposals",
                tuple(proposals.shape),
                f"(K < {n}, {', '.join(map(str, mean.shape))})",
            )
            fixed = proposals.clamp(self.low, self.high)
        kept = fixed
        for _ in range(cfg.iterations):
            noise = colored_noise((n, *mean.shape), cfg.noise_beta, generator, mean.device)
            actions = (mean + std * noise).clamp(self.low, self.high)
            actions[0] = mean
            actions[1 : 1 + len(kept)] = kept[: n - 1]
            costs = cost(actions).detach().reshape(n)
            costs = torch.nan_to_num(costs, nan=torch.inf, posinf=torch.inf)
            best = float(costs.min())
            if cfg.kind == "cem":
                elites = actions[torch.topk(costs, cfg.elites, largest=False).indices]
                new_mean, new_std = elites.mean(0), elites.std(0, unbiased=False)
                if cfg.keep_elites:
                    kept = torch.cat([fixed, elites])
            else:
                new_mean, new_std = self._weighted(actions, costs)
            mean = cfg.momentum * mean + (1 - cfg.momentum) * new_mean
            std = (cfg.momentum * std + (1 - cfg.momentum) * new_std).clamp_min(cfg.min_std)
        return Plan(mean, std, best)

    def _weighted(self, actions: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
        finite = torch.isfinite(costs)
        if not bool(finite.any()):
            return actions[0], torch.full_like(actions[0], self.cfg.init_std)
        spread = costs[finite].std(unbiased=False) if int(finite.sum()) > 1 else costs.new_ones(())
        scaled = (costs - costs[finite].min()) / (self.cfg.temperature * spread.clamp_min(1e-8))
        weights = torch.softmax(-scaled, 0)[:, None, None]
        mean = (weights * actions).sum(0)
        std = (weights * (actions - mean).pow(2)).sum(0).sqrt()
        return mean, std
