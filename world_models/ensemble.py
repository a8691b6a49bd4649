"""A probabilistic ensemble of MLP dynamics for state observations (PETS).

Each of ``M`` members maps a standardised ``[o_t, a_{t+1}]`` to a diagonal Gaussian over the
standardised change ``o_{t+1} - o_t``; the members are evaluated together with batched
matrix products (weights shaped ``(M, in, out)``), never a Python loop. The predicted
log-variance is kept between learned bounds (softly, as in PETS) so that it can neither
collapse nor explode away from the data. A reward head and a continuation head (plain MLPs)
read the same transition input.

The latent state is the observation itself: ``LatentState.stoch`` is ``o_t`` and
``LatentState.deter`` the transition input ``[o_{t-1}, a_t]`` that produced it, so the heads
and :meth:`EnsembleDynamics.disagreement` score a state without further inputs.

Imagined observations are clipped to the range of the training data (widened by 10%):
outside it the members only extrapolate, and long open-loop rollouts would blow up.

Propagation (Chua et al., 2018) of ``N`` particles: ``ts1`` gives each particle one member
for a whole rollout, ``tsinf`` redraws the member at every step; both sample the member's
Gaussian. ``mean`` (``sample=False``) follows the average of the members' means.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.base import DataSpec
from world_models.base import WorldModel, autocast_dtype, check, check_choice
from world_models.heads import ContinuationHead, RewardHead, masked_mean, read_out
from world_models.replay import Chunk
from world_models.state import LatentState

PROPAGATIONS = ("ts1", "tsinf")
ACTIVATIONS = {"silu": F.silu, "relu": F.relu}
# Imagined observations stay within the range seen in the data, widened by this share of
# it: far outside, the MLPs extrapolate and open-loop rollouts blow up.
OBS_MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """Sizes and regularisers of the probabilistic ensemble."""

    members: int = 5
    """Ensemble members M."""
    hidden: int = 128
    """Width of each member's hidden layers."""
    layers: int = 3
    """Hidden layers per member."""
    activation: str = "silu"
    """silu | relu: the members' nonlinearity (relu is several times cheaper on a CPU)."""
    head: tuple[int, ...] = (64, 64)
    """Hidden widths of the reward and continuation heads."""
    propagation: str = "ts1"
    """ts1 | tsinf: how sampled rollouts pick members (see the module docstring)."""
    min_logvar: float = -10.0
    """Initial lower bound of the log-variance (learned)."""
    max_logvar: float = 0.5
    """Initial upper bound of the log-variance (learned)."""
    logvar_reg: float = 0.01
    """Weight of the penalty that pulls the bounds together."""
    beta_nll: float = 0.5
    """beta-NLL (Seitzer et al., 2022): weight each point's Gaussian NLL by its variance to
    this power (stopped gradient); 0 is the plain NLL, which neglects the means of
    hard-to-predict transitions (contacts) that then dominate the squared error."""
    weight_decay: float = 5e-5
    """L2 weight decay of the members."""
    bootstrap: bool = True
    """Train each member on its own resample (with replacement) of every batch."""

    def __post_init__(self) -> None:
        for name in ("members", "hidden", "layers"):
            check(getattr(self, name) >= 1, name, getattr(self, name), ">= 1")
        check(all(h >= 1 for h in self.head), "head", self.head, "positive widths")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("propagation", self.propagation, PROPAGATIONS)
        check(self.min_logvar < self.max_logvar, "min_logvar", self.min_logvar, "< max_logvar")
        check(self.logvar_reg >= 0, "logvar_reg", self.logvar_reg, ">= 0")
        check(0 <= self.beta_nll <= 1, "beta_nll", self.beta_nll, "in [0, 1]")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")


FEW_ROWS = 16
"""Rows per member up to which :meth:`GaussianEnsemble.forward_columns` multiplies
row-major in float32: a 10-step rollout of 20 rows (a policy proposal's) took 2.3 ms
against 3.4 column-major in float32 and 6.0 in bfloat16 (Xeon with AVX512-BF16)."""


class Workspace(NamedTuple):
    """Reused along a rollout by :meth:`GaussianEnsemble.forward_columns`.

    ``buffers``: two ``(M, hidden, rows)`` for the hidden activations: on a CPU, fresh
    megabyte-sized outputs at every step cost more in page faults than the products.
    ``layers``: each layer's column-form bias and weight, converted once per rollout to
    the autocast's precision (converting at every step cost 135 us of a bfloat16 step).
    """

    buffers: tuple[Tensor, ...]
    layers: tuple[tuple[Tensor, Tensor], ...]


class EnsembleLinear(nn.Module):
    """``M`` independent linear maps: ``(M, N, in) -> (M, N, out)`` by one batched matmul."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def forward_columns(self, x: Tensor) -> Tensor:
        """The same maps on column-major inputs: ``(M, in, N) -> (M, out, N)``."""
        return torch.baddbmm(self.bias.mT, self.weight.mT, x)


class GaussianEnsemble(nn.Module):
    """``(M, N, in) -> (mean, logvar)``, each ``(M, N, out)``, with bounded log-variance."""

    def __init__(self, cfg: EnsembleConfig, in_features: int, out_features: int):
        super().__init__()
        widths = [in_features] + [cfg.hidden] * cfg.layers
        self.hidden = nn.ModuleList(
            EnsembleLinear(cfg.members, a, b) for a, b in itertools.pairwise(widths)
        )
        self.out = EnsembleLinear(cfg.members, widths[-1], 2 * out_features)
        self.activation = ACTIVATIONS[cfg.activation]
        self.max_logvar = nn.Parameter(torch.full((out_features,), cfg.max_logvar))
        self.min_logvar = nn.Parameter(torch.full((out_features,), cfg.min_logvar))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        for layer in self.hidden:
            x = self.activation(layer(x))
        mean, logvar = self.out(x).chunk(2, -1)
        return mean, self.bound(logvar)

    def bound(self, logvar: Tensor) -> Tensor:
        """The raw log-variance ``(..., out)`` softly kept between the learned bounds."""
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        return self.min_logvar + F.softplus(logvar - self.min_logvar)

    def forward_columns(self, x: Tensor, work: Workspace | None = None) -> Tensor:
        """The raw output ``(M, 2 * out, N)`` (means, then unbounded log-variances) of
        column-major inputs ``(M, in, N)``: the map of :meth:`forward`, transposed.

        Planning puts tens of rows per member through a narrow output layer, which a CPU
        computes several times faster as ``W^T x^T`` than as ``x W``; the hidden layers
        run as fast either way. Without autograd the activations are applied in place, and
        ``work`` (see :meth:`workspace`) is used when given; under an enabled autocast (see
        :func:`world_models.base.imagination_precision`) the products and activations run
        in its lower precision, and the output is float32. Up to :data:`FEW_ROWS` rows per
        member (acting, policy proposals) the products run row-major and in float32
        instead (:meth:`_few_rows`), faster there.
        """
        if torch.is_grad_enabled():
            for layer in self.hidden:
                x = self.activation(layer.forward_columns(x))
            return self.out.forward_columns(x).float()
        if x.shape[-1] <= FEW_ROWS:
            return self._few_rows(x.mT).mT
        dtype = autocast_dtype(x.device) or x.dtype
        *hidden, (bias, weight) = self._column_layers(dtype) if work is None else work.layers
        x = x.to(dtype)
        for i, (b, w) in enumerate(hidden):
            out = None if work is None else work.buffers[i % 2]
            x = self.activation(torch.baddbmm(b, w, x, out=out), inplace=True)
        return torch.baddbmm(bias, weight, x).float()

    def _column_layers(self, dtype: torch.dtype) -> tuple[tuple[Tensor, Tensor], ...]:
        """Each layer's bias ``(M, out, 1)`` and weight ``(M, out, in)`` in ``dtype``."""
        layers = [*self.hidden, self.out]
        return tuple((layer.bias.mT.to(dtype), layer.weight.mT.to(dtype)) for layer in layers)

    def _few_rows(self, x: Tensor) -> Tensor:
        """:meth:`forward` without bounds on ``(M, N, in)``, ``N`` <= :data:`FEW_ROWS`, in
        float32 under any autocast: converting the weights would cost more than it saves."""
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            for layer in self.hidden:
                x = self.activation(layer(x), inplace=True)
            return self.out(x)

    def workspace(self, rows: int, like: Tensor) -> Workspace | None:
        """What :meth:`forward_columns` reuses along a rollout of ``rows`` rows per member,
        in the precision of the autocast now enabled; ``None`` where it uses none (with
        autograd, or up to :data:`FEW_ROWS` rows)."""
        if torch.is_grad_enabled() or rows <= FEW_ROWS:
            return None
        members, hidden, _ = self.out.weight.shape
        dtype = autocast_dtype(like.device) or like.dtype
        buffers = tuple(like.new_empty(members, hidden, rows, dtype=dtype) for _ in range(2))
        return Workspace(buffers, self._column_layers(dtype))


class EnsembleDynamics(WorldModel):
    """Probabilistic ensemble over vector observations ``(D,)``.

    Buffers (saved with the weights): the observation mean and std (inputs) and the mean
    and std of ``o_{t+1} - o_t`` (targets), set by :meth:`fit_normalizer`, and
    ``ends_seen``, set by :meth:`loss` once a training batch holds an episode's end.
    """

    Config = EnsembleConfig
    SMOKE: ClassVar[dict[str, Any]] = {"members": 3, "hidden": 16, "layers": 2, "head": (16,)}
    TRAIN: ClassVar[dict[str, Any]] = {"steps": 5000, "batch_size": 256, "seq_len": 2, "lr": 1e-3}

    def __init__(self, cfg: EnsembleConfig, spec: DataSpec, action_dim: int):
        super().__init__(cfg, spec, action_dim)
        check(spec.kind == "vector", "obs", spec.kind, "vector (state) observations for ensemble")
        self.obs_dim = math.prod(spec.shape)
        inputs = self.obs_dim + action_dim
        self.net = GaussianEnsemble(cfg, inputs, self.obs_dim)
        self.reward_head = RewardHead(inputs, cfg.head)
        self.cont_head = ContinuationHead(inputs, cfg.head)
        self.register_buffer("delta_mean", torch.zeros(self.obs_dim))
        self.register_buffer("delta_std", torch.ones(self.obs_dim))
        self.register_buffer("obs_low", torch.full((self.obs_dim,), -torch.inf))
        self.register_buffer("obs_high", torch.full((self.obs_dim,), torch.inf))
        # Whether training has seen an episode end. Until it has, every continuation is 1,
        # not a head's guess: planning on tasks that never end (reacher, pendulum) then skips
        # an MLP over every imagined row.
        self.register_buffer("ends_seen", torch.zeros((), dtype=torch.bool))
        self.register_load_state_dict_pre_hook(_assume_ends_seen)

    @property
    def members(self) -> int:
        return self.cfg.members

    def fit_normalizer(self, transitions: Chunk) -> None:
        """Input and target statistics from transitions ``(N, 2, D)`` (see the replay's
        :meth:`~world_models.replay.ReplayBuffer.transitions`)."""
        super().fit_normalizer(transitions)
        obs = transitions.obs.float().flatten(2)
        delta = obs[:, 1] - obs[:, 0]
        self.delta_mean.copy_(delta.mean(0))
        low, high = obs.amin((0, 1)), obs.amax((0, 1))
        margin = OBS_MARGIN * (high - low)
        self.obs_low.copy_(low - margin)
        self.obs_high.copy_(high + margin)
        if delta.shape[0] > 1:
            self.delta_std.copy_(delta.std(0).clamp_min(1e-4))

    # -- transitions ------------------------------------------------------------------------
    def _inputs(self, deter: Tensor) -> Tensor:
        """Raw ``[o, a]`` ``(..., D + A)`` to the standardised network input."""
        obs, action = deter.split([self.obs_dim, self.action_dim], -1)
        return self._standardised(obs, action)

    def _standardised(self, obs: Tensor, action: Tensor) -> Tensor:
        """``o`` ``(..., D)`` and ``a`` ``(..., A)`` to the network input ``(..., D + A)``."""
        return torch.cat([(obs - self.obs_mean) / self.obs_std, action], -1)

    def _input_scaling(self) -> tuple[Tensor, Tensor]:
        """``shift``, ``scale`` ``(D + A,)`` with ``(deter - shift) / scale`` the network input
        of ``deter = [o, a]``: the actions' entries (0 and 1) leave them exactly as they are."""
        zeros = torch.zeros(self.action_dim, device=self.device)
        return torch.cat([self.obs_mean, zeros]), torch.cat([self.obs_std, zeros + 1])

    def _block_outputs(
        self, x: Tensor, work: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Standardised inputs ``(N, D + A)`` in ``M`` contiguous blocks of ``ceil(N / M)``
        rows, block ``m`` for member ``m`` -> each row's delta mean and bounded
        log-variance (standardised units), ``(N, D)`` each, in one network call
        (``work``: see :meth:`GaussianEnsemble.workspace`)."""
        m, n = self.members, x.shape[0]
        pad = -n % m
        if pad:
            x = torch.cat([x, x[:1].expand(pad, -1)], 0)
        raw = self.net.forward_columns(x.view(m, -1, x.shape[-1]).mT, work)
        mean, logvar = raw.mT.reshape(n + pad, -1)[:n].chunk(2, -1)
        return mean, self.net.bound(logvar)

    def _all_members(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Standardised inputs ``(N, D + A)`` -> every member's delta mean and bounded
        log-variance (standardised units), ``(M, N, D)`` each."""
        raw = self.net.forward_columns(x.mT.expand(self.members, -1, -1))
        mean, logvar = raw.mT.chunk(2, -1)
        return mean, self.net.bound(logvar)

    def predict(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Every member's next-observation mean and std in observation units.

        ``obs`` ``(N, D)``, ``action`` ``(N, A)`` -> two ``(M, N, D)`` tensors.
        """
        obs = obs.to(self.device).float()
        mean, logvar = self._all_members(self._standardised(obs, action.to(self.device).float()))
        std = (0.5 * logvar).exp() * self.delta_std
        return obs + mean * self.delta_std + self.delta_mean, std

    def predict_blocks(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's next-observation mean and std from one member, in observation units.

        The ``N`` rows are split into ``M`` contiguous blocks of ``ceil(N / M)``; block ``m``
        goes through member ``m`` only (one network call, not ``M``). ``(N, D)``, ``(N, A)``
        -> two ``(N, D)`` tensors.
        """
        mean, logvar = self._block_outputs(self._standardised(obs.float(), action.float()))
        return obs + mean * self.delta_std + self.delta_mean, (0.5 * logvar).exp() * self.delta_std

    def rollout_blocks(
        self, obs: Tensor, actions: Tensor, noise: bool = True
    ) -> tuple[LatentState, tuple[Tensor, Tensor]]:
        """:meth:`predict_blocks` along a horizon, sampling each step (TS1 by blocks).

        ``obs`` ``(N, D)``, ``actions`` ``(N, H, A)`` -> the states reached ``(N, H, .)``
        (without ``stats``) and each step's predicted mean and std (observation units),
        ``(N, H, D)`` each. Step ``t``
        draws ``o_{t+1} ~ N(mean, std²)`` (the mean when ``noise`` is false) with one
        ``randn`` of ``(N, D)``, clipped by :meth:`clamp_observation`: the same draws
        and values as ``H`` calls of :meth:`predict_blocks`, for less work per step.
        """
        obs = obs.float()
        shift, scale = self._input_scaling()
        work = self.net.workspace(-(-obs.shape[0] // self.members), obs)
        deters, reached, means, stds = [], [], [], []
        for action in actions.float().unbind(1):
            deter = torch.cat([obs, action], -1)
            mean, logvar = self._block_outputs((deter - shift) / scale, work)
            mean = obs + mean * self.delta_std + self.delta_mean
            std = (0.5 * logvar).exp() * self.delta_std
            sample = mean + std * torch.randn_like(std) if noise else mean
            obs = self.clamp_observation(sample)
            deters.append(deter)
            reached.append(obs)
            means.append(mean)
            stds.append(std)
        return LatentState(torch.stack(deters, 1), torch.stack(reached, 1)), (
            torch.stack(means, 1),
            torch.stack(stds, 1),
        )

    def clamp_observation(self, obs: Tensor) -> Tensor:
        """Keep imagined observations within the data's range plus a margin.

        Gradients pass as if unclamped (straight-through): a policy that drives an imagined
        state past the range still learns which way leads back, where a clamp's zero
        gradient left it no direction at all."""
        clamped = obs.clamp(self.obs_low, self.obs_high)
        return obs + (clamped - obs).detach() if obs.requires_grad else clamped

    def disagreement(self, states: LatentState) -> Tensor:
        """Epistemic uncertainty of the transitions that produced ``states`` ``(*batch,)``.

        The variance across members of their predicted means (in standardised delta
        units), averaged over dimensions.
        """
        mean, _ = self._all_members(self._inputs(states.deter.reshape(-1, states.deter.shape[-1])))
        return mean.var(0, unbiased=False).mean(-1).reshape(states.shape)

    def initial(self, batch_size: int) -> LatentState:
        zeros = torch.zeros(batch_size, self.obs_dim, device=self.device)
        return LatentState(
            torch.zeros(batch_size, self.obs_dim + self.action_dim, device=self.device), zeros
        )

    def observe(
        self,
        obs: Tensor,
        action: Tensor,
        state: LatentState | None = None,
        sample: bool = True,
        is_first: Tensor | None = None,
    ) -> LatentState:
        obs = obs.to(self.device).float().flatten(2)
        action = action.to(self.device).float()
        if state is None:
            previous = torch.cat([obs[:, :1], obs[:, :-1]], 1)
        else:
            previous = torch.cat([state.stoch[:, None], obs[:, :-1]], 1)
        if is_first is not None:  # an episode's first state came from nowhere: itself
            previous = torch.where(is_first.to(self.device)[..., None], obs, previous)
        return LatentState(torch.cat([previous, action], -1), obs)

    def imagine(
        self,
        state: LatentState,
        actions: Tensor,
        sample: bool = True,
        propagation: str | None = None,
    ) -> LatentState:
        """Propagate ``N`` particles ``state`` ``(N, .)`` under ``actions`` ``(N, H, A)``.

        ``propagation`` (default: the config's) is ts1 or tsinf when sampling; with
        ``sample=False`` every member predicts every particle and their means are averaged.
        ``stats`` holds the predicted mean and std (observation units) of each step.
        """
        propagation = propagation or self.cfg.propagation
        actions = actions.to(self.device, torch.float32)
        n, m = actions.shape[0], self.members
        per_member = -(-n // m)
        order = inverse = None
        obs = state.stoch
        shift, scale = self._input_scaling()
        work = self.net.workspace(per_member, actions)
        states = []
        for action in actions.unbind(1):
            deter = torch.cat([obs, action], -1)
            x = (deter - shift) / scale
            if not sample:
                mean, logvar = self._all_members(x)
                mean = mean.mean(0)
                std = (0.5 * logvar).exp().mean(0)
                delta = mean
            else:
                if order is None or propagation == "tsinf":
                    # Particle order[k] goes to member k // per_member (padding rows repeat).
                    perm = torch.randperm(per_member * m, device=self.device)
                    order, inverse = perm % n, perm.argsort()[:n]
                mean, logvar = self._block_outputs(x[order], work)
                mean, std = mean[inverse], (0.5 * logvar[inverse]).exp()
                delta = mean + std * torch.randn_like(std)
            next_obs = self.clamp_observation(obs + delta * self.delta_std + self.delta_mean)
            stats = torch.cat(
                [obs + mean * self.delta_std + self.delta_mean, std * self.delta_std], -1
            )
            states.append(LatentState(deter, next_obs, stats))
            obs = next_obs
        return LatentState.stack(states)

    # -- read-outs --------------------------------------------------------------------------
    def decode(self, states: LatentState) -> Tensor:
        return states.stoch.unflatten(-1, self.spec.shape)

    def reward(self, states: LatentState) -> Tensor:
        return self._read_out(self.reward_head, states.deter)

    def continuation(self, states: LatentState) -> Tensor:
        if not bool(self.ends_seen):
            return states.deter.new_ones(states.deter.shape[:-1], dtype=torch.float32)
        return self._read_out(self.cont_head.probability, states.deter)

    def _read_out(self, head: Callable[[Tensor], Tensor], deter: Tensor) -> Tensor:
        """``head`` on the standardised inputs of the transitions ``deter`` ``(*batch, D + A)``
        -> ``(*batch,)`` (in blocks without autograd: :func:`world_models.heads.read_out`)."""
        shift, scale = self._input_scaling()
        return read_out(head, (deter - shift) / scale)

    # -- training ---------------------------------------------------------------------------
    def _transitions(self, batch: Chunk) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Standardised inputs ``(N, D + A)``, delta targets ``(N, D)``, rewards and
        termination flags ``(N,)`` of every consecutive pair of rows in the chunk."""
        obs = batch.obs.to(self.device).float().flatten(2)
        action = batch.action.to(self.device).float()
        deter = torch.cat([obs[:, :-1], action[:, 1:]], -1)
        target = (obs[:, 1:] - obs[:, :-1] - self.delta_mean) / self.delta_std
        valid = ~batch.is_first[:, 1:].to(self.device)
        x = self._inputs(deter)[valid]
        return (
            x,
            target[valid],
            batch.reward[:, 1:].to(self.device)[valid],
            batch.terminated[:, 1:].to(self.device)[valid],
        )

    def loss(self, batch: Chunk) -> tuple[Tensor, dict[str, float]]:
        x, target, reward, terminated = self._transitions(batch)
        self.ends_seen |= terminated.any()
        m, n = self.members, x.shape[0]
        if self.cfg.bootstrap:
            index = torch.randint(0, n, (m, n), device=self.device)
        else:
            index = torch.arange(n, device=self.device).expand(m, n)
        mean, logvar = self.net(x[index])
        err = (mean - target[index]).pow(2)
        nll = 0.5 * (err * (-logvar).exp() + logvar)
        if self.cfg.beta_nll:
            nll = nll * (self.cfg.beta_nll * logvar.detach()).exp()
        nll = nll.sum(-1).mean()
        bounds = self.cfg.logvar_reg * (self.net.max_logvar.sum() - self.net.min_logvar.sum())
        ones = torch.ones_like(reward, dtype=torch.bool)
        reward_nll = masked_mean(self.reward_head.nll(x, reward), ones)
        cont_nll = masked_mean(self.cont_head.nll(x, terminated), ones)
        total = nll + bounds + reward_nll + cont_nll
        metrics = {
            "losses/dynamics": float(nll.detach()),
            "losses/reward": float(reward_nll.detach()),
            "losses/cont": float(cont_nll.detach()),
            "world_model/mse": float(err.mean().detach()),
            "world_model/logvar": float(logvar.mean().detach()),
        }
        return total, metrics

    def optimizers(self, lr: float) -> dict[str, torch.optim.Optimizer]:
        groups = [
            {"params": list(self.net.parameters()), "weight_decay": self.cfg.weight_decay},
            {"params": list(self.reward_head.parameters()) + list(self.cont_head.parameters())},
        ]
        return {"opt": torch.optim.Adam(groups, lr=lr)}

    @torch.no_grad()
    def elbo(self, batch: Chunk) -> Tensor:
        """Exact log-likelihood ``(B,)`` of each next observation under the ensemble's
        equal-weight mixture, nats per transition (observation units)."""
        x, target, _, _ = self._transitions(batch)
        mean, logvar = self.net(x.expand(self.members, *x.shape))
        log_n = -0.5 * ((target - mean).pow(2) * (-logvar).exp() + logvar + math.log(2 * math.pi))
        per_member = log_n.sum(-1) - self.delta_std.log().sum()
        return torch.logsumexp(per_member, 0) - math.log(self.members)


def _assume_ends_seen(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Checkpoints from before ``ends_seen`` existed keep reading their continuation head."""
    state.setdefault(prefix + "ends_seen", torch.ones((), dtype=torch.bool))
