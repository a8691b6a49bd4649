"""Batched imagination: many candidate futures in a world model, one step for all at once.

An :class:`Imaginer` adapts a world model (the ensemble or the RSSM) to what expected free
energy needs of every imagined step: the state reached, the predicted observation, the
entropy of the observation model, and the raw material of the epistemic estimators (every
ensemble member's prediction, or the RSSM's posterior-to-prior KL after an imagined
observation). :func:`imagine` rolls ``N`` candidate action sequences with ``P`` particles
each and returns a :class:`Rollout` of ``(N, P, H)`` tensors; the amortised policy calls
:meth:`Imaginer.step` itself, with actions chosen along the way.

Rows are particle-major (row ``p * N + n`` is particle ``p`` of candidate ``n``), so that an
ensemble member's rows form one contiguous block. Nothing loops over candidates or
particles; the only Python loop is over the horizon.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from agents.active_inference import efe
from world_models.base import PIXEL_LEVELS, WorldModel
from world_models.ensemble import EnsembleDynamics
from world_models.rssm import MIN_OBS_STD, RSSM
from world_models.state import LatentState


@dataclasses.dataclass(frozen=True)
class Needs:
    """Which optional quantities a rollout computes (each costs network calls)."""

    obs: bool = True
    """Predicted observations (decoded, for the RSSM)."""
    reward: bool = False
    """Predicted rewards and continuation probabilities."""
    cont: bool = False
    """Predicted continuation probabilities (without rewards)."""
    members: bool = False
    """Every ensemble member's prediction (the inputs of the ensemble's epistemic estimators);
    see :func:`imagine` for when this costs ``M`` times the network calls."""
    latent_kl: bool = False
    """RSSM: posterior-to-prior KL after an imagined observation (decoder + encoder calls)."""
    outcomes: bool = False
    """Keep the predicted observations in the rollout (for the k-NN entropy)."""
    entropy: bool = False
    """The observation model's entropy ``H[p(o | s)]`` (the ambiguity: feef, the k-NN
    estimator and the logged terms; a reduction over every imagined row and dimension)."""

    @property
    def continuation(self) -> bool:
        """Whether continuation probabilities are needed (alone or with rewards)."""
        return self.reward or self.cont

    def union(self, other: Needs) -> Needs:
        return Needs(
            **{
                f.name: getattr(self, f.name) or getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )


@dataclasses.dataclass(frozen=True)
class Imagined:
    """One imagined step of ``R`` rows.

    state: ``(R, .)`` the latent state reached.
    obs: ``(R, *obs_shape)`` the predicted observation in observation units (the mean of
        ``p(o | s)``; a sample of the next state for the ensemble), or ``None``.
    obs_entropy: ``(R,)`` entropy of the observation model ``H[p(o | s)]`` (nats), or
        ``None`` (not needed).
    reward, cont: ``(R,)`` predicted reward and probability that the episode goes on.
    member_mean, member_std: ``(M, R, D)`` every ensemble member's predicted observation.
    latent_kl: ``(R,)`` ``KL[q(s | o) || p(s)]`` after an imagined observation (RSSM).
    pred_mean, pred_std: ``(R, D)`` the Gaussian each row's own member predicted (ensemble).
    """

    state: LatentState
    obs: Tensor | None
    obs_entropy: Tensor | None = None
    reward: Tensor | None = None
    cont: Tensor | None = None
    member_mean: Tensor | None = None
    member_std: Tensor | None = None
    latent_kl: Tensor | None = None
    pred_mean: Tensor | None = None
    pred_std: Tensor | None = None


@dataclasses.dataclass(frozen=True)
class Rollout:
    """Imagined futures of ``N`` candidates with ``P`` particles over ``H`` steps.

    log_preference: ``(N, P, H)``; obs_entropy, reward, cont, latent_kl: ``(N, P, H)`` or
    ``None``; outcomes: ``(N, P, H, D)`` or ``None``; member_mean, member_std:
    ``(M, N, P, H, D)`` or ``None``; actions: ``(N, 1 or P, H, A)``, the actions taken.
    """

    log_preference: Tensor
    obs_entropy: Tensor | None = None
    reward: Tensor | None = None
    cont: Tensor | None = None
    latent_kl: Tensor | None = None
    outcomes: Tensor | None = None
    member_mean: Tensor | None = None
    member_std: Tensor | None = None
    actions: Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.log_preference.shape)  # type: ignore[return-value]


LogPreference = Callable[[Imagined], Tensor]
"""``log p̃`` of one imagined step: ``Imagined`` of ``R`` rows -> ``(R,)``."""


class Imaginer:
    """Base class: ``step(state, action, needs) -> Imagined`` and ``features(state)``."""

    model: WorldModel

    def step(self, state: LatentState, action: Tensor, needs: Needs) -> Imagined:
        raise NotImplementedError

    def features(self, state: LatentState) -> Tensor:
        """``(R, F)`` inputs of a policy or value network for states ``(R, .)``."""
        raise NotImplementedError


class EnsembleImaginer(Imaginer):
    """Trajectory sampling (PETS TS1) in a probabilistic ensemble.

    The ``R`` rows are split into ``M`` contiguous blocks of ``ceil(R / M)``, block ``m``
    propagated by member ``m`` for the whole rollout: with particle-major rows and ``P = M``
    particles, member ``p`` propagates particle ``p`` of every candidate. Each step adds the
    member's predicted noise when ``noise`` is true. With ``needs.members`` every member
    also predicts from every row's state (the inputs of the parameter information gain).
    """

    def __init__(self, model: EnsembleDynamics, noise: bool = True):
        self.model = model
        self.noise = noise

    def step(self, state: LatentState, action: Tensor, needs: Needs) -> Imagined:
        model = self.model
        obs = state.stoch
        member_mean = member_std = None
        if needs.members:
            member_mean, member_std = model.predict(obs, action)
            rows = torch.arange(obs.shape[0], device=obs.device)
            own = rows // -(-obs.shape[0] // model.members)
            pred_mean, pred_std = member_mean[own, rows], member_std[own, rows]
        else:
            pred_mean, pred_std = model.predict_blocks(obs, action)
        sampled = pred_mean + pred_std * torch.randn_like(pred_std) if self.noise else pred_mean
        next_obs = model.clamp_observation(sampled)
        reached = LatentState(torch.cat([obs, action], -1), next_obs)
        reward = model.reward(reached) if needs.reward else None
        cont = model.continuation(reached) if needs.continuation else None
        return Imagined(
            reached,
            next_obs,
            efe.gaussian_entropy(pred_std) if needs.entropy else None,
            reward,
            cont,
            member_mean,
            member_std,
            pred_mean=pred_mean,
            pred_std=pred_std,
        )

    def rollout(self, state: LatentState, actions: Tensor, needs: Needs) -> Imagined:
        """:meth:`step` along ``actions`` ``(R, H, A)`` in one call (``needs.members``
        false): an :class:`Imagined` of ``(R, H)`` rows, the same draws and values as ``H``
        steps with less work per step."""
        model = self.model
        reached, (pred_mean, pred_std) = model.rollout_blocks(state.stoch, actions, self.noise)
        reward = model.reward(reached) if needs.reward else None
        cont = model.continuation(reached) if needs.continuation else None
        return Imagined(
            reached,
            reached.stoch,
            efe.gaussian_entropy(pred_std) if needs.entropy else None,
            reward,
            cont,
            pred_mean=pred_mean,
            pred_std=pred_std,
        )

    def features(self, state: LatentState) -> Tensor:
        return (state.stoch - self.model.obs_mean) / self.model.obs_std


class RSSMImaginer(Imaginer):
    """Prior steps of the RSSM; observations decoded only when needed.

    The observation model is ``N(decoder(h, s), σ²)`` with a std that does not depend on
    the state, so its entropy (the ambiguity) is the same for every candidate. The latent
    information gain draws ``o ~ p(o | h, s)``, embeds it and compares the posterior
    ``q(s | h, o)`` with the prior ``p(s | h)``.
    """

    def __init__(self, model: RSSM):
        self.model = model

    def obs_std(self) -> Tensor:
        """The observation model's std in network units, ``(*obs_shape)``."""
        m = self.model
        if m.obs_log_std is None:
            return torch.full(m.spec.shape, m.cfg.obs_std, device=m.device)
        return m.obs_log_std.clamp_min(math.log(MIN_OBS_STD)).exp()

    def _obs_entropy(self, rows: int) -> Tensor:
        m = self.model
        units = torch.full((), PIXEL_LEVELS, device=m.device) if m.pixels else m.obs_std
        std = (self.obs_std() * units).reshape(-1)
        return efe.gaussian_entropy(std).expand(rows)

    def step(self, state: LatentState, action: Tensor, needs: Needs) -> Imagined:
        m = self.model
        prior = m.img_step(state, action, sample=True)
        raw = obs = latent_kl = reward = cont = None
        if needs.obs or needs.latent_kl:
            raw = m.decoder(prior.features)
            obs = m.postprocess(raw) if needs.obs else None
        if needs.latent_kl:
            assert raw is not None and prior.stats is not None
            sample = raw + self.obs_std() * torch.randn_like(raw)
            embed = m.encoder(sample)
            post = m._stats(m.obs_out(torch.cat([prior.deter, embed], -1)))
            if m.categorical:
                latent_kl = m.kl(post, prior.stats)
            else:
                qm, qs = post.chunk(2, -1)
                pm, ps = prior.stats.chunk(2, -1)
                latent_kl = efe.gaussian_kl(qm, qs, pm, ps)
        if needs.reward:
            reward = m.reward(prior)
        if needs.continuation:
            cont = m.continuation(prior)
        entropy = self._obs_entropy(action.shape[0]) if needs.entropy else None
        return Imagined(prior, obs, entropy, reward, cont, latent_kl=latent_kl)

    def features(self, state: LatentState) -> Tensor:
        return state.features


def flat_rows(rows: Imagined) -> Imagined:
    """An :class:`Imagined` of ``(R, H)`` rows as one of ``R * H`` rows."""
    flat = {
        f.name: None if (v := getattr(rows, f.name)) is None else v.flatten(0, 1)
        for f in dataclasses.fields(rows)
        if f.name not in ("state", "member_mean", "member_std")
    }
    return Imagined(rows.state.flatten(), member_mean=None, member_std=None, **flat)


def make_imaginer(model: WorldModel, noise: bool = True) -> Imaginer:
    if isinstance(model, EnsembleDynamics):
        return EnsembleImaginer(model, noise)
    if isinstance(model, RSSM):
        return RSSMImaginer(model)
    raise ValueError(f"no imagination for world model {type(model).__name__}: use ensemble or rssm")


def stack(
    steps: list[tuple[Tensor, Imagined]],
    candidates: int,
    keep_outcomes: bool = False,
    members_from_particles: bool = False,
) -> Rollout:
    """Steps ``[(log p̃ (R,), Imagined of R rows)] * H`` with ``R = P * N`` rows
    (particle-major) -> a :class:`Rollout` of ``(N, P, H)`` tensors.

    ``members_from_particles`` takes the member arrays from the particles' own predictions:
    ``(P, N, 1, H, D)``, each particle a component of the predictive mixture.
    """

    def column(values: list[Tensor | None], dim: int = 1) -> Tensor | None:
        return None if values[0] is None else torch.stack(values, dim)  # type: ignore[arg-type]

    imagined = [s for _, s in steps]
    obs = None
    if keep_outcomes:
        obs = column([None if s.obs is None else s.obs.flatten(1) for s in imagined])
    rows = Imagined(
        imagined[0].state,  # not part of a Rollout
        obs,
        column([s.obs_entropy for s in imagined]),
        column([s.reward for s in imagined]),
        column([s.cont for s in imagined]),
        column([s.member_mean for s in imagined], -2),
        column([s.member_std for s in imagined], -2),
        column([s.latent_kl for s in imagined]),
        column([s.pred_mean for s in imagined]),
        column([s.pred_std for s in imagined]),
    )
    log_preference = column([lp for lp, _ in steps])
    assert log_preference is not None
    return rollout_of(log_preference, rows, candidates, keep_outcomes, members_from_particles)


def rollout_of(
    log_preference: Tensor,
    rows: Imagined,
    candidates: int,
    keep_outcomes: bool = False,
    members_from_particles: bool = False,
) -> Rollout:
    """A :class:`Rollout` of ``(N, P, H)`` tensors from ``log p̃`` ``(R, H)`` and the
    fields of ``rows`` over the same ``R = P * N`` rows (particle-major) and ``H`` steps
    (``member_mean``, ``member_std``: ``(M, R, H, D)``); see :func:`stack`."""
    n = candidates
    p = log_preference.shape[0] // n

    def column(values: Tensor | None) -> Tensor | None:  # (R, H, ...) -> (N, P, H, ...)
        return None if values is None else values.unflatten(0, (p, n)).transpose(0, 1)

    def members(values: Tensor | None) -> Tensor | None:  # (M, R, H, D) -> (M, N, P, H, D)
        return None if values is None else values.unflatten(1, (p, n)).transpose(1, 2)

    outcomes = None
    if keep_outcomes and rows.obs is not None:
        outcomes = column(rows.obs.reshape(*log_preference.shape, -1))
    member_mean, member_std = members(rows.member_mean), members(rows.member_std)
    if members_from_particles:
        mean, std = column(rows.pred_mean), column(rows.pred_std)
        assert mean is not None and std is not None
        member_mean, member_std = mean.transpose(0, 1)[:, :, None], std.transpose(0, 1)[:, :, None]
    return Rollout(
        log_preference=column(log_preference),  # type: ignore[arg-type]
        obs_entropy=column(rows.obs_entropy),
        reward=column(rows.reward),
        cont=column(rows.cont),
        latent_kl=column(rows.latent_kl),
        outcomes=outcomes,
        member_mean=member_mean,
        member_std=member_std,
    )


def imagine(
    imaginer: Imaginer,
    start: LatentState,
    actions: Tensor,
    log_preference: LogPreference,
    particles: int = 1,
    needs: Needs = Needs(),
) -> Rollout:
    """Roll ``actions`` ``(N, H, A)`` forward from ``start`` (one state ``(1, .)`` or one
    per candidate ``(N, .)``) with ``particles`` samples each; score every step with
    ``log_preference``. Returns a :class:`Rollout` of ``(N, P, H)`` tensors.

    With the ensemble and ``needs.members``: when the particles of a candidate cover every
    member equally (``P`` a multiple of ``M``, e.g. ``P = M``: see
    :class:`EnsembleImaginer`) the members' predictions are
    those each member makes along its own particles, at no extra cost (their spread then
    holds both the disagreement of the parameters and that of the states they led to);
    otherwise every member predicts from every particle's state (``M`` times the calls).
    """
    n, h, _ = actions.shape
    rows = n * particles
    if start.shape[0] == 1:
        state = start.map(lambda t: t.expand(rows, *t.shape[1:]))
    else:
        state = start.map(lambda t: t.repeat(particles, *([1] * (t.dim() - 1))))
    acts = actions.repeat(particles, 1, 1) if particles > 1 else actions
    from_particles = (
        needs.members
        and isinstance(imaginer, EnsembleImaginer)
        and particles % imaginer.model.members == 0
    )
    step_needs = dataclasses.replace(needs, members=False) if from_particles else needs
    if isinstance(imaginer, EnsembleImaginer) and not step_needs.members:
        # The whole horizon at once, scored in one call: preferences are row by row.
        rows = imaginer.rollout(state, acts, step_needs)
        log_preference = log_preference(flat_rows(rows)).view(acts.shape[:2])
        rollout = rollout_of(log_preference, rows, n, needs.outcomes, from_particles)
    else:
        steps = []
        for t in range(h):
            step = imaginer.step(state, acts[:, t], step_needs)
            state = step.state
            steps.append((log_preference(step), step))
        rollout = stack(steps, n, needs.outcomes, from_particles)
    return dataclasses.replace(rollout, actions=actions[:, None])
