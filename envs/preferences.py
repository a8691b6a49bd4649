"""Preferences: log p̃(o), the log density of the observations a task wants to see.

Each task's preference describes the same goal as its reward but is defined from the goal
itself, not from the reward function: a pendulum upright and still, a fingertip on the
target, a walker moving forward at a target speed while upright. Agents use it as the
pragmatic term of expected free energy, so :meth:`log_preference` runs on torch tensors
with any leading batch dimensions and also accepts numpy arrays.

Three kinds:

- :class:`FeatureGoal` (state vectors): independent Normals over selected features of the
  observation (a feature may be the difference of two entries, e.g. object minus goal),
  ``log p̃(o) = sum_i log N(f_i(o); mean_i, scale_i)``.
- :class:`ImageGoal` (pixels): a mixture of Laplace densities centred on goal images,
  ``log p̃(o) = logsumexp_k sum_pixels log Laplace(o / 255; g_k / 255, b) - log K``.
- :class:`CategoricalPreference` (discrete tasks): pymdp's ``C``, read as log-preferences
  over each modality's outcomes and normalised with a softmax.

Every preference also has ``success(obs)``, the goal test that agrees with it, and a
hand-made goal and far observation for tests and examples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.distributions import Laplace, Normal

Obs = np.ndarray | torch.Tensor


def as_tensor(obs: Any, key: str = "state") -> torch.Tensor:
    """``obs`` as a floating torch tensor; a ``both``-mode dict gives its ``key`` entry."""
    if isinstance(obs, Mapping):
        obs = obs[key]
    x = obs if isinstance(obs, torch.Tensor) else torch.as_tensor(np.asarray(obs))
    return x if x.is_floating_point() else x.float()


class Preference(Protocol):
    """What every task's preference provides."""

    def log_preference(self, obs: Obs) -> torch.Tensor:
        """Log density of preferred observations: ``(..., D) -> (...)``."""
        ...

    def success(self, obs: Obs) -> np.ndarray:
        """Whether ``obs`` is a goal observation: ``(..., D) -> (...)`` bools."""
        ...

    def goal_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """A hand-made observation that meets the goal (``base`` with the goal written in)."""
        ...

    def far_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """A hand-made observation far from the goal."""
        ...


@dataclasses.dataclass(frozen=True)
class Feature:
    """One preferred feature of a state observation: ``obs[index] - obs[minus]``.

    The preference on it is ``Normal(mean, scale)``; the goal test is ``low <= f <= high``
    (``mean -/+ 2 scale`` when not given); ``far`` is a value clearly outside the goal,
    used to build a far observation (``None`` leaves the feature at its goal value).
    """

    name: str
    index: int
    mean: float
    scale: float
    minus: int | None = None
    low: float | None = None
    high: float | None = None
    far: float | None = None

    @property
    def bounds(self) -> tuple[float, float]:
        low = self.mean - 2 * self.scale if self.low is None else self.low
        high = self.mean + 2 * self.scale if self.high is None else self.high
        return low, high


class FeatureGoal:
    """Independent Normal preferences over features of a ``(..., obs_dim)`` state vector."""

    def __init__(self, features: Sequence[Feature], obs_dim: int):
        if not features:
            raise ValueError("FeatureGoal needs at least one feature")
        for f in features:
            for i in (f.index, f.minus):
                if i is not None and not 0 <= i < obs_dim:
                    raise ValueError(f"feature {f.name!r}: index {i} outside obs_dim {obs_dim}")
        self.features = tuple(features)
        self.obs_dim = obs_dim
        self._index = torch.tensor([f.index for f in features])
        self._has_minus = any(f.minus is not None for f in features)
        # A feature without ``minus`` subtracts a column of zeros (index obs_dim, padded in).
        self._minus = torch.tensor([obs_dim if f.minus is None else f.minus for f in features])
        self._mean = torch.tensor([f.mean for f in features], dtype=torch.float64)
        self._scale = torch.tensor([f.scale for f in features], dtype=torch.float64)
        bounds = np.array([f.bounds for f in features])
        self._low, self._high = bounds[:, 0], bounds[:, 1]

    def values(self, obs: Obs) -> torch.Tensor:
        """The features of ``obs``: ``(..., obs_dim) -> (..., F)``."""
        x = as_tensor(obs)
        if x.shape[-1] != self.obs_dim:
            raise ValueError(f"expected observations of size {self.obs_dim}, got {x.shape}")
        index = self._index.to(x.device)
        values = x[..., index]
        if self._has_minus:
            padded = torch.cat([x, torch.zeros_like(x[..., :1])], dim=-1)
            values = values - padded[..., self._minus.to(x.device)]
        return values

    def log_preference(self, obs: Obs) -> torch.Tensor:
        """``sum_i log N(f_i(o); mean_i, scale_i)``: ``(..., obs_dim) -> (...)``."""
        values = self.values(obs)
        mean = self._mean.to(values.device, values.dtype)
        scale = self._scale.to(values.device, values.dtype)
        return Normal(mean, scale).log_prob(values).sum(-1)

    def success(self, obs: Obs) -> np.ndarray:
        """All features inside their goal bounds: ``(..., obs_dim) -> (...)`` bools."""
        values = self.values(obs).detach().cpu().double().numpy()
        return np.all((values >= self._low) & (values <= self._high), axis=-1)

    def _observation(self, base: np.ndarray | None, far: bool) -> np.ndarray:
        obs = np.zeros(self.obs_dim) if base is None else np.array(base, dtype=np.float64)
        for f in self.features:
            value = f.far if far and f.far is not None else f.mean
            offset = 0.0 if f.minus is None else obs[f.minus]
            obs[f.index] = value + offset
        return obs if base is None else obs.astype(np.asarray(base).dtype)

    def goal_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """``base`` (zeros when ``None``) with every feature at its preferred mean."""
        return self._observation(base, far=False)

    def far_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """``base`` with every feature that has a ``far`` value set to it."""
        return self._observation(base, far=True)


class ImageGoal:
    """Preference for pixel observations given by ``K`` goal images.

    ``log p̃(o) = logsumexp_k sum_pixels log Laplace(o / 255; g_k / 255, scale) - log K``:
    an equal-weight mixture of Laplace densities, one centred on each goal image, over
    pixel intensities in [0, 1]. ``scale`` (the Laplace ``b``) sets how sharply the density
    falls with the mean absolute pixel difference. ``success`` holds when the mean absolute
    difference to the nearest goal image is at most ``tolerance`` (intensities in [0, 1]).

    Args:
        goal_images: ``(K, C, H, W)`` or ``(C, H, W)`` uint8 images (channels first, as
            the ``pixels`` observation mode gives them).
    """

    def __init__(self, goal_images: Obs, scale: float = 0.1, tolerance: float = 0.02):
        goals = as_tensor(goal_images, key="pixels")
        if goals.dim() == 3:
            goals = goals[None]
        if goals.dim() != 4:
            raise ValueError(f"goal images must be (K, C, H, W), got {tuple(goals.shape)}")
        self.goals = goals.float() / 255.0
        self.scale = scale
        self.tolerance = tolerance

    def _flat(self, obs: Obs) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_tensor(obs, key="pixels").float() / 255.0
        if tuple(x.shape[-3:]) != tuple(self.goals.shape[1:]):
            raise ValueError(f"expected images {tuple(self.goals.shape[1:])}, got {x.shape}")
        goals = self.goals.to(x.device).flatten(1)  # (K, P)
        return x.flatten(-3)[..., None, :], goals  # (..., 1, P), (K, P)

    def log_preference(self, obs: Obs) -> torch.Tensor:
        """Log mixture density of images: ``(..., C, H, W) -> (...)``."""
        x, goals = self._flat(obs)
        # On x's device: broadcast against the goals, a CPU scalar would become a CPU (K, P).
        scale = torch.tensor(self.scale, device=x.device)
        per_goal = Laplace(goals, scale).log_prob(x).sum(-1)  # (..., K)
        return torch.logsumexp(per_goal, dim=-1) - math.log(goals.shape[0])

    def success(self, obs: Obs) -> np.ndarray:
        """Mean absolute difference to the nearest goal image at most ``tolerance``."""
        x, goals = self._flat(obs)
        distance = (x - goals).abs().mean(-1).min(-1).values
        return (distance <= self.tolerance).cpu().numpy()

    def goal_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """The first goal image, ``(C, H, W)`` uint8."""
        return (self.goals[0] * 255).round().to(torch.uint8).numpy()

    def far_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """The photographic negative of the first goal image."""
        return 255 - self.goal_observation()


class CategoricalPreference:
    """pymdp-style preferences ``C`` over discrete outcomes, one array per modality.

    ``log p̃(o) = sum_m log softmax(C[m])[o_m]`` for an observation of one outcome index
    per modality, ``(..., M) -> (...)``. ``success`` holds when modality ``goal_modality``
    shows one of ``goal_outcomes``.
    """

    def __init__(
        self,
        C: Sequence[np.ndarray],
        goal_modality: int,
        goal_outcomes: Sequence[int],
        goal: Sequence[int],
        far: Sequence[int],
    ):
        self.C = [np.asarray(c, dtype=np.float64) for c in C]
        self._log_c = [torch.log_softmax(torch.as_tensor(c), dim=0) for c in self.C]
        self.goal_modality = goal_modality
        self.goal_outcomes = np.asarray(goal_outcomes)
        self._goal = np.asarray(goal, dtype=np.int64)
        self._far = np.asarray(far, dtype=np.int64)

    def log_preference(self, obs: Obs) -> torch.Tensor:
        x = obs if isinstance(obs, torch.Tensor) else torch.as_tensor(np.asarray(obs))
        x = x.long()
        if x.shape[-1] != len(self.C):
            raise ValueError(f"expected {len(self.C)} modalities, got observations {x.shape}")
        terms = [c.to(x.device)[x[..., m]] for m, c in enumerate(self._log_c)]
        return torch.stack(terms, dim=-1).sum(-1)

    def success(self, obs: Obs) -> np.ndarray:
        x = obs.cpu().numpy() if isinstance(obs, torch.Tensor) else np.asarray(obs)
        return np.isin(x[..., self.goal_modality], self.goal_outcomes)

    def goal_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        return self._goal.copy()

    def far_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        return self._far.copy()
