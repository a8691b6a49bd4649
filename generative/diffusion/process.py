"""Gaussian diffusion around any denoiser: training loss, variational bound, DDPM and DDIM
sampling. Works on any example shape ``(B, ...)``.

The reverse process is ``p(x_{t-1} | x_t) = N(mu(x_t, t), sigma_t^2 I)`` with ``mu`` the
posterior mean at the predicted ``x_0`` and a variance that is fixed: ``large`` = ``beta_t``
(exact for unit-Gaussian data, the tighter bound on the toys), ``small`` = the posterior
variance (exact for a point mass; its first value is 0, so the second is used at the first
step); or ``learned`` (Nichol & Dhariwal 2021): the net outputs a second half ``u`` and
``log sigma_t^2 = f log beta_t + (1 - f) log small_t`` per dimension with ``f = (u + 1) / 2``,
trained through the bound term of the hybrid loss.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from generative.diffusion.gaussians import gaussian_log_density, normal_kl
from generative.diffusion.prediction import to_x0_eps, training_target
from generative.diffusion.schedule import NoiseSchedule

VARIANCES = ("small", "large", "learned")

# decoder(x0, mean, var) -> (B,) log p(x_0 | x_1) in nats
Decoder = Callable[[Tensor, Tensor, Tensor], Tensor]


def _sum_except_batch(x: Tensor) -> Tensor:
    return x.flatten(1).sum(1)


class GaussianDiffusion(nn.Module):
    """A denoiser ``net(x_t (B, ...), t (B,))`` and a :class:`NoiseSchedule`.

    A conditional model passes ``cond (B, ...)`` to the methods below, which hand it on as
    ``net(x_t, t, cond)``: every density and sample is then one of ``p(x | cond)``.

    ``prediction``: ``eps`` | ``x0`` | ``v`` (what ``net`` outputs); ``variance``: ``small`` |
    ``large`` | ``learned`` (then ``net`` outputs ``(B, 2 C, ...)``: the prediction, then the
    variance interpolation ``u``, split along dimension 1); ``clip``: clamp the predicted
    ``x_0`` to ``[-clip, clip]`` (images in ``[-1, 1]``), ``None`` for no clamp.
    """

    def __init__(
        self,
        net: nn.Module,
        schedule: NoiseSchedule,
        prediction: str = "eps",
        variance: str = "small",
        clip: float | None = None,
    ):
        super().__init__()
        if variance not in VARIANCES:
            raise ValueError(
                f"invalid variance={variance!r}: must be one of {', '.join(VARIANCES)}"
            )
        self.net, self.schedule = net, schedule
        self.prediction, self.variance, self.clip = prediction, variance, clip
        s = schedule
        # the posterior variance is 0 at the first step: use the next one there
        small = torch.cat([s.posterior_var[1:2], s.posterior_var[1:]])
        self.register_buffer("log_small", small.log(), persistent=False)
        self.register_buffer("log_large", s.betas.log(), persistent=False)
        var = s.betas if variance == "large" else small
        self.register_buffer("reverse_var", var, persistent=False)

    @property
    def timesteps(self) -> int:
        return self.schedule.timesteps

    @property
    def learned_variance(self) -> bool:
        return self.variance == "learned"

    def _net(
        self, xt: Tensor, t: Tensor, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The net's prediction ``(B, ...)`` and, with a learned variance, ``u (B, ...)``."""
        out = self.net(xt, t) if cond is None else self.net(xt, t, cond)
        if not self.learned_variance:
            return out, None
        prediction, u = out.chunk(2, dim=1)
        return prediction, u

    def variance_at(self, t: Tensor, like: Tensor, u: Tensor | None = None) -> Tensor:
        """The reverse variance at ``t (B,)``: ``(B, 1, ...)`` when fixed; from the net's
        ``u (B, ...)`` when learned: ``exp(f log beta_t + (1 - f) log small_t)``,
        ``f = (u + 1) / 2``."""
        if u is None:
            return self.schedule.gather(self.reverse_var, t, like)
        frac = (u + 1) / 2
        log_large = self.schedule.gather(self.log_large, t, like)
        log_small = self.schedule.gather(self.log_small, t, like)
        return torch.exp(frac * log_large + (1 - frac) * log_small)

    # -- training ---------------------------------------------------------------------------
    def loss(
        self,
        x0: Tensor,
        decoder: Decoder | None = None,
        vlb_weight: float = 0.0,
        cond: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-example losses at one uniform timestep each: ``(loss, mse, vlb)``, all ``(B,)``.

        ``mse``: mean squared error of the prediction (DDPM's "simple" objective, in the
        chosen parameterisation). ``vlb``: ``T`` times the bound term at the drawn step, in
        nats (an unbiased estimate of the bound's step terms; needs ``decoder`` for the first
        step); with a learned variance the mean is detached in it, so it trains only the
        variance (Nichol & Dhariwal's hybrid loss). ``loss = mse + vlb_weight * vlb / D`` with
        ``D`` the dimensions per example (``vlb`` is 0 without a decoder).
        """
        t = torch.randint(0, self.timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.schedule.q_sample(x0, t, noise)
        ab = self.schedule.gather(self.schedule.alpha_bar, t, x0)
        target = training_target(self.prediction, x0, noise, ab)
        prediction, u = self._net(xt, t, cond)
        mse = (prediction - target).pow(2).flatten(1).mean(1)
        if decoder is None:
            return mse, mse, torch.zeros_like(mse)
        frozen = prediction.detach() if self.learned_variance else prediction
        mean, var = self._mean_var(frozen, u, xt, t)
        vlb = self.timesteps * self._term(x0, xt, t, mean, var, decoder)
        dims = x0[0].numel()
        return mse + vlb_weight * vlb / dims, mse, vlb.detach()

        # -- the reverse process ----------------------------------------------------------------

    def _x0_eps(self, prediction: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        ab = self.schedule.gather(self.schedule.alpha_bar, t, xt)
        x0, eps = to_x0_eps(self.prediction, prediction, xt, ab)
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()
        return x0, eps

    def predict(self, xt: Tensor, t: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Estimates ``(x0, eps)`` at ``x_t``; with ``clip``, ``eps`` matches the clamped ``x0``."""
        prediction, _ = self._net(xt, t, cond)
        return self._x0_eps(prediction, xt, t)

    def _mean_var(
        self, prediction: Tensor, u: Tensor | None, xt: Tensor, t: Tensor
    ) -> tuple[Tensor, Tensor]:
        x0, _ = self._x0_eps(prediction, xt, t)
        mean, _ = self.schedule.posterior(x0, xt, t)
        return mean, self.variance_at(t, xt, u)

    def p_mean_var(
        self, xt: Tensor, t: Tensor, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean ``(B, ...)`` and variance of ``p(x_{t-1} | x_t)``: ``(B, 1, ...)`` when fixed,
        ``(B, ...)`` when learned."""
        prediction, u = self._net(xt, t, cond)
        return self._mean_var(prediction, u, xt, t)

    # -- the variational bound --------------------------------------------------------------
    def prior_term(self, x0: Tensor) -> Tensor:
        """``(B,)`` ``KL(q(x_T | x_0) || N(0, I))``."""
        t = torch.full((x0.shape[0],), self.timesteps - 1, device=x0.device)
        mean, var = self.schedule.q_mean_var(x0, t)
        return _sum_except_batch(normal_kl(mean, var, torch.zeros_like(mean), torch.ones_like(var)))

    def _term(
        self, x0: Tensor, xt: Tensor, t: Tensor, mean: Tensor, var: Tensor, decoder: Decoder
    ) -> Tensor:
        q_mean, q_var = self.schedule.posterior(x0, xt, t)
        terms = _sum_except_batch(normal_kl(q_mean, q_var.clamp(min=1e-20), mean, var))
        first = t == 0
        if bool(first.any()):  # the decoder only where it is used: its tails can give NaN grads
            terms = terms.clone()
            terms[first] = -decoder(x0[first], mean[first], var[first])
        return terms

    def step_term(
        self, x0: Tensor, t: Tensor, decoder: Decoder, cond: Tensor | None = None
    ) -> Tensor:
        """``(B,)`` bound term at step ``t`` (per example), with ``x_t`` drawn from ``q``:
        ``-log p(x_0 | x_1)`` where ``t == 0``, ``KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))``
        elsewhere."""
        xt = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        mean, var = self.p_mean_var(xt, t, cond)
        return self._term(x0, xt, t, mean, var, decoder)

    def bound(
        self, x0: Tensor, decoder: Decoder, steps: int = 0, cond: Tensor | None = None
    ) -> Tensor:
        """``(B,)`` the negative variational bound ``-ELBO >= -log p(x_0)`` in nats.

        The prior and decoder terms are always computed; of the ``T - 1`` KL terms,
        ``steps = 0`` evaluates all (``T`` denoiser calls), ``steps = K`` splits them into
        ``K`` equal strata and weights one uniformly drawn step per stratum by its size: an
        unbiased estimate of the same bound with ``K + 1`` calls. Each term uses one draw of
        ``x_t``, so either way the result is a Monte Carlo estimate of the bound.
        """
        batch, device = x0.shape[0], x0.device
        total = self.prior_term(x0)
        total = total + self.step_term(
            x0, torch.zeros(batch, device=device, dtype=torch.long), decoder, cond
        )
        last = self.timesteps
        if steps <= 0 or steps >= last - 1:
            strata = [(t, t + 1) for t in range(1, last)]
        else:
            edges = torch.linspace(1, last, steps + 1).round().long().tolist()
            strata = list(itertools.pairwise(edges))
        for lo, hi in strata:
            t = torch.randint(lo, hi, (batch,), device=device)
            total = total + (hi - lo) * self.step_term(x0, t, decoder, cond)
        return total

    def trajectory_log_weight(
        self, x0: Tensor, decoder: Decoder, cond: Tensor | None = None
    ) -> Tensor:
        """``(B,)`` ``log p(x_{0:T}) - log q(x_{1:T} | x_0)`` along one forward trajectory.

        Its mean is the same bound as :meth:`bound`, and its exponential is an unbiased
        estimate of ``p(x_0)`` (importance sampling over the whole path), which makes it
        valid inside importance-weighted estimates (IWAE), unlike the per-step form.
        """
        s = self.schedule
        log_w = torch.zeros(x0.shape[0], device=x0.device, dtype=x0.dtype)
        prev = x0
        for step in range(self.timesteps):
            beta = s.betas[step].to(x0.dtype)
            x = (1 - beta).sqrt() * prev + beta.sqrt() * torch.randn_like(prev)
            log_w = log_w - _sum_except_batch(
                gaussian_log_density(x, (1 - beta).sqrt() * prev, beta)
            )
            t = torch.full((x0.shape[0],), step, device=x0.device, dtype=torch.long)
            mean, var = self.p_mean_var(x, t, cond)
            if step == 0:
                log_w = log_w + decoder(x0, mean, var)
            else:
                log_w = log_w + _sum_except_batch(gaussian_log_density(prev, mean, var))
            prev = x
        return log_w + _sum_except_batch(
            gaussian_log_density(prev, torch.zeros_like(prev), torch.ones_like(prev))
        )

    # -- sampling ---------------------------------------------------------------------------
    # The samplers are differentiable (in the noise they are fixed functions of the net), so
    # a model that plans through its samples gets gradients; call them under no_grad otherwise.
    def sample_ddpm(
        self, noise: Tensor, temperature: float = 1.0, cond: Tensor | None = None
    ) -> Tensor:
        """Ancestral sampling through all ``T`` steps from ``x_T = noise (B, ...)``;
        ``temperature`` scales the noise added at each step."""
        x = noise
        for step in reversed(range(self.timesteps)):
            t = torch.full((x.shape[0],), step, device=x.device, dtype=torch.long)
            mean, var = self.p_mean_var(x, t, cond)
            x = mean + var.sqrt() * torch.randn_like(x) * temperature if step > 0 else mean
        return x

    def sample_ddim(
        self, noise: Tensor, steps: int, eta: float = 0.0, cond: Tensor | None = None
    ) -> Tensor:
        """DDIM sampling (Song et al. 2021) on ``steps`` evenly spaced timesteps from
        ``x_T = noise (B, ...)``; ``eta = 0`` is deterministic, ``eta = 1`` DDPM-like."""
        seq = torch.linspace(self.timesteps - 1, 0, min(steps, self.timesteps)).round().long()
        seq = torch.unique_consecutive(seq).tolist()
        x = noise
        ab_all = self.schedule.alpha_bar
        for i, step in enumerate(seq):
            t = torch.full((x.shape[0],), step, device=x.device, dtype=torch.long)
            x0, eps = self.predict(x, t, cond)
            ab = ab_all[step]
            ab_prev = ab_all[seq[i + 1]] if i + 1 < len(seq) else ab.new_tensor(1.0)
            sigma = eta * math.sqrt(float((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)))
            direction = (1 - ab_prev - sigma**2).clamp(min=0).sqrt()
            x = ab_prev.sqrt() * x0 + direction * eps
            if sigma > 0:
                x = x + sigma * torch.randn_like(x)
        return x
