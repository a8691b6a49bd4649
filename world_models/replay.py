"""A sequence replay buffer over whole episodes, sampled as fixed-length chunks.

Rows follow the recurrent-model convention: row ``t`` of an episode holds the
observation ``o_t`` together with what led to it, the action ``a_{t-1}``, the reward
``r_{t-1}`` and whether ``o_t`` is terminal (``terminated``) or the last observation of a
time-limited episode (``truncated``). The first row of an episode has a zero action and
a zero reward and ``is_first`` set. An episode of ``n`` environment steps is ``n + 1``
rows.

Storage is one pre-allocated ring of ``capacity`` rows in which every episode is
contiguous (an episode that does not fit before the end starts again at row 0), so a
chunk is a plain slice. A chunk stays within one episode, or with ``across_episodes`` runs
on into the episodes stored after it, as Dreamer's replay does, with ``is_first`` marking
where each one starts (a recurrent model restarts its state there). The oldest episodes
are evicted as the ring overwrites them. The episode being written is sampled too.

Sampling draws from torch's global generator, which checkpoints save and restore, and
the buffer's ``state_dict`` holds only tensors (the used rows and the episode index), so
a resumed run samples exactly what an uninterrupted one would.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

FIELDS = ("obs", "action", "reward", "terminated", "truncated")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A batch of sequence chunks; every field is ``(B, T, ...)``.

    obs: ``(B, T, *obs_shape)``, uint8 pixels or float32 vectors, as stored.
    action: ``(B, T, A)`` float32, the action that led to ``obs[:, t]`` (zero at an
        episode's first row).
    reward: ``(B, T)`` float32, the reward that came with ``obs[:, t]``.
    terminated, truncated, is_first: ``(B, T)`` bool.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor
    is_first: Tensor

    def to(self, device: torch.device | str) -> Chunk:
        return Chunk(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, T)``."""
        return tuple(self.reward.shape)  # type: ignore[return-value]

    def __getitem__(self, index: Any) -> Chunk:
        """Index the batch and time dimensions of every field alike, e.g. ``chunk[:, :5]``."""
        return Chunk(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


class ReplayBuffer:
    """Episodes of ``(obs, action, reward, terminated, truncated)`` in a bounded ring.

    Parameters
    ----------
    capacity:
        Rows (observations) kept; the oldest whole episodes are dropped to make room.
    obs_shape, obs_dtype:
        One observation's shape and dtype (``torch.uint8`` for pixels, ``torch.float32``
        for vectors).
    action_dim:
        Size of a (continuous or one-hot) action vector.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        action_dim: int,
        obs_dtype: torch.dtype = torch.float32,
    ):
        if capacity < 2:
            raise ValueError(f"capacity={capacity} must be >= 2")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.action_dim = int(action_dim)
        self.obs_dtype = obs_dtype
        # Zero-filled (not empty) so that a checkpoint of the same history is byte-identical.
        self._obs = torch.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self._action = torch.zeros(self.capacity, self.action_dim)
        self._reward = torch.zeros(self.capacity)
        self._terminated = torch.zeros(self.capacity, dtype=torch.bool)
        self._truncated = torch.zeros(self.capacity, dtype=torch.bool)
        # Episodes as [start_row, length], oldest first; the last may be open.
        self._episodes: collections.deque[list[int]] = collections.deque()
        self._open = False
        self._pointer = 0
        self._high = 0  # rows [0, high) have been written at least once

    # -- sizes ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Rows (observations) currently stored."""
        return sum(length for _, length in self._episodes)

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_steps(self) -> int:
        """Environment steps (transitions) stored: rows minus one first row per episode."""
        return len(self) - self.num_episodes

    def episode_lengths(self) -> list[int]:
        """Rows per stored episode, oldest first."""
        return [length for _, length in self._episodes]

    # -- adding -----------------------------------------------------------------------------
    def start_episode(self, obs: Any) -> None:
        """Begin an episode with its first observation (closing any open one as it is)."""
        self._open = False
        self._episodes.append([self._pointer, 0])
        self._open = True
        self._write_row(obs, torch.zeros(self.action_dim), 0.0, False, False)

    def add(self, action: Any, reward: float, obs: Any, terminated: bool, truncated: bool) -> None:
        """Append one environment step: the action taken, then what came back from ``step``.

        The episode closes when ``terminated`` or ``truncated`` is true; the next step
        needs a new :meth:`start_episode`.
        """
        if not self._open:
            raise RuntimeError("add() before start_episode(): call it with the reset observation")
        self._write_row(obs, action, reward, terminated, truncated)
        if terminated or truncated:
            self._open = False

    def add_episode(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        terminated: Any = None,
        truncated: Any = None,
    ) -> None:
        """Append a whole episode of ``n`` steps.

        obs: ``(n + 1, *obs_shape)``, from the reset observation to the last one.
        action: ``(n, A)`` the actions taken; reward: ``(n,)``.
        terminated, truncated: ``(n,)`` flags returned by each step (default: false, except
        ``truncated`` at the last step when neither is given).
        """
        obs, action = _tensor(obs), _tensor(action, torch.float32)
        n = action.shape[0]
        if obs.shape[0] != n + 1:
            raise ValueError(
                f"an episode of {n} actions needs {n + 1} observations, got {obs.shape[0]}"
            )
        reward = _tensor(reward, torch.float32).reshape(n)
        terminated = (
            torch.zeros(n, dtype=torch.bool)
            if terminated is None
            else _tensor(terminated, torch.bool)
        )
        if truncated is None:
            truncated = torch.zeros(n, dtype=torch.bool)
            if n and not bool(terminated[-1]):
                truncated[-1] = True
        else:
            truncated = _tensor(truncated, torch.bool)
        if n + 1 > self.capacity:
            raise ValueError(f"an episode of {n + 1} rows does not fit capacity={self.capacity}")
        self.start_episode(obs[0])
        start = self._episodes[-1][0]
        if start + n + 1 > self.capacity:  # let _write_row handle the wrap row by row
            for t in range(n):
                self.add(
                    action[t], float(reward[t]), obs[t + 1], bool(terminated[t]), bool(truncated[t])
                )
            self._open = False
            return
        rows = slice(start + 1, start + n + 1)
        self._evict_overlapping(start + 1, start + n + 1)
        self._obs[rows] = obs[1:].to(self.obs_dtype)
        self._action[rows] = action.reshape(n, self.action_dim)
        self._reward[rows] = reward
        self._terminated[rows] = terminated.reshape(n)
        self._truncated[rows] = truncated.reshape(n)
        self._episodes[-1][1] += n
        self._pointer = start + n + 1
        self._high = max(self._high, self._pointer)
        self._open = False

    def _write_row(
        self, obs: Any, action: Any, reward: float, terminated: bool, truncated: bool
    ) -> None:
        if self._pointer >= self.capacity:
            self._wrap()
        row = self._pointer
        self._evict_overlapping(row, row + 1)
        self._obs[row] = _tensor(obs).to(self.obs_dtype).reshape(self.obs_shape)
        self._action[row] = _tensor(action, torch.float32).reshape(self.action_dim)
        self._reward[row] = float(reward)
        self._terminated[row] = bool(terminated)
        self._truncated[row] = bool(truncated)
        self._episodes[-1][1] += 1
        self._pointer = row + 1
        self._high = max(self._high, self._pointer)

    def _wrap(self) -> None:
        """Move the open episode to row 0 so that it stays contiguous."""
        start, length = self._episodes.pop()
        if length + 1 > self.capacity:
            raise ValueError(f"an episode longer than capacity={self.capacity} rows")
        # Episodes beyond the wrap point are the oldest; they go first.
        while self._episodes and self._episodes[0][0] >= start:
            self._episodes.popleft()
        self._evict_overlapping(0, length)
        for store in self._stores():
            store[:length] = store[start : start + length].clone()
        self._episodes.append([0, length])
        self._pointer = length

    def _evict_overlapping(self, lo: int, hi: int) -> None:
        """Drop the oldest episodes while they overlap rows ``[lo, hi)`` (never the open one)."""
        while len(self._episodes) > 1:
            start, length = self._episodes[0]
            if start < hi and lo < start + length:
                self._episodes.popleft()
            else:
                break

    def _stores(self) -> tuple[Tensor, ...]:
        return (self._obs, self._action, self._reward, self._terminated, self._truncated)

    # -- sampling ---------------------------------------------------------------------------
    def num_chunks(self, length: int) -> int:
        """How many distinct chunks of ``length`` rows the stored episodes hold."""
        return sum(max(0, n - length + 1) for _, n in self._episodes)

    def _spans(self, across_episodes: bool) -> list[tuple[int, int]]:
        """``(first row, rows)`` of what a chunk may lie in: each episode, or each run of
        episodes stored one right after another (a run breaks where the ring wrapped)."""
        if not across_episodes:
            return [(s, n) for s, n in self._episodes]
        spans: list[tuple[int, int]] = []
        for s, n in self._episodes:
            if spans and sum(spans[-1]) == s:
                spans[-1] = (spans[-1][0], spans[-1][1] + n)
            else:
                spans.append((s, n))
        return spans

    def max_chunk(self, across_episodes: bool = False) -> int:
        """The longest chunk :meth:`sample` can draw (0 when empty)."""
        return max((n for _, n in self._spans(across_episodes)), default=0)

    def sample(self, batch_size: int, length: int, across_episodes: bool = False) -> Chunk:
        """``batch_size`` chunks of ``length`` consecutive rows, each within one episode,
        or with ``across_episodes`` running on into the next stored episode(s).

        Chunks are uniform over all valid start rows. Within episodes, those shorter than
        ``length`` are never sampled, which on a task that ends by failing can leave all but
        its few longest episodes unseen; across episodes every row is sampled alike. Draws
        use torch's global generator.
        """
        spans = self._spans(across_episodes)
        starts = torch.tensor([s for s, _ in spans], dtype=torch.long)
        counts = torch.tensor([max(0, n - length + 1) for _, n in spans], dtype=torch.long)
        total = int(counts.sum())
        if total == 0:
            what = "run of stored episodes" if across_episodes else "episode"
            raise ValueError(
                f"no {what} holds a chunk of {length} rows (longest: "
                f"{self.max_chunk(across_episodes)}); collect more data or shorten the chunks"
            )
        flat = torch.randint(0, total, (batch_size,))
        ends = counts.cumsum(0)
        span = torch.searchsorted(ends, flat, right=True)
        offset = flat - (ends[span] - counts[span])
        return self._gather(starts[span] + offset, length)

    def _episode_starts(self) -> Tensor:
        return torch.tensor([s for s, _ in self._episodes], dtype=torch.long)

    def _gather(
        self, first_rows: Tensor, length: int, episode_starts: Tensor | None = None
    ) -> Chunk:
        rows = first_rows[:, None] + torch.arange(length)
        if episode_starts is None:
            episode_starts = self._episode_starts()
        return Chunk(
            obs=self._obs[rows],
            action=self._action[rows],
            reward=self._reward[rows],
            terminated=self._terminated[rows],
            truncated=self._truncated[rows],
            is_first=torch.isin(rows, episode_starts),
        )

    def transitions(self, limit: int = 0) -> Chunk:
        """Every stored transition as a chunk of length two ``(N, 2, ...)``: rows ``t - 1``
        and ``t`` of an episode. ``limit > 0`` keeps the newest ``limit`` of them."""
        starts = torch.tensor([s for s, _ in self._episodes], dtype=torch.long)
        lengths = torch.tensor([n for _, n in self._episodes], dtype=torch.long)
        pairs = (lengths - 1).clamp_min(0)
        episode_start = starts.repeat_interleave(pairs)
        offset = torch.arange(int(pairs.sum())) - (pairs.cumsum(0) - pairs).repeat_interleave(pairs)
        if limit > 0:
            episode_start, offset = episode_start[-limit:], offset[-limit:]
        return self._gather(episode_start + offset, 2)

    def episodes(self) -> Iterator[Chunk]:
        """Every stored episode, oldest first, as a chunk of batch size one."""
        episode_starts = self._episode_starts()
        for start, length in list(self._episodes):
            yield self._gather(torch.tensor([start]), length, episode_starts)

    def chunks(self, length: int, stride: int | None = None, limit: int = 0) -> Chunk | None:
        """Deterministic chunks of ``length`` rows starting every ``stride`` rows (default:
        ``length``) of every episode, stacked ``(B, length, ...)``; ``limit > 0`` keeps that
        many, evenly spread. ``None`` when no episode is long enough."""
        stride = stride or length
        firsts = [
            start + offset
            for start, n in self._episodes
            for offset in range(0, n - length + 1, stride)
        ]
        if not firsts:
            return None
        if 0 < limit < len(firsts):
            keep = torch.linspace(0, len(firsts) - 1, limit).round().long().unique()
            firsts = [firsts[i] for i in keep.tolist()]
        return self._gather(torch.tensor(firsts), length)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors only: the written rows, the episode index and the write position."""
        high = self._high
        return {
            "obs": self._obs[:high].clone(),
            "action": self._action[:high].clone(),
            "reward": self._reward[:high].clone(),
            "terminated": self._terminated[:high].clone(),
            "truncated": self._truncated[:high].clone(),
            "episodes": torch.tensor(list(self._episodes), dtype=torch.long).reshape(-1, 2),
            "pointer": torch.tensor(self._pointer),
            "open": torch.tensor(self._open),
            "capacity": torch.tensor(self.capacity),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"replay capacity {int(state['capacity'])} in the checkpoint, {self.capacity} here"
            )
        high = state["obs"].shape[0]
        self._obs.zero_()
        self._obs[:high] = state["obs"]
        for name, store in zip(FIELDS[1:], self._stores()[1:], strict=True):
            store.zero_()
            store[:high] = state[name]
        self._episodes = collections.deque([int(s), int(n)] for s, n in state["episodes"].tolist())
        self._pointer = int(state["pointer"])
        self._open = bool(state["open"])
        self._high = high

    # -- recorded rollouts ------------------------------------------------------------------
    @classmethod
    def from_rollouts(
        cls, paths: Sequence[str | Path], capacity: int | None = None, obs_key: str = "obs"
    ) -> ReplayBuffer:
        """A buffer holding the episodes of recorded rollouts (``.npz`` files).

        Each file holds one episode (``obs`` ``(n + 1, ...)``, ``action`` ``(n, A)``,
        ``reward`` ``(n,)`` and optionally ``terminated``/``truncated`` ``(n,)``) or several,
        stacked with an extra leading episode axis and an optional ``length`` ``(E,)``
        array of steps per episode. ``obs_key`` picks e.g. ``pixels`` over ``obs``.
        """
        episodes = []
        for path in paths:
            with np.load(Path(path)) as data:
                episodes.extend(_episodes_in(dict(data), obs_key, str(path)))
        if not episodes:
            raise ValueError("no episodes in the given rollouts")
        obs0 = episodes[0]["obs"]
        rows = sum(e["obs"].shape[0] for e in episodes)
        buffer = cls(
            capacity or rows,
            obs0.shape[1:],
            episodes[0]["action"].shape[-1],
            torch.uint8 if obs0.dtype == np.uint8 else torch.float32,
        )
        for e in episodes:
            buffer.add_episode(**e)
        return buffer


def _episodes_in(data: dict[str, np.ndarray], obs_key: str, where: str) -> list[dict[str, Any]]:
    for key in (obs_key, "action", "reward"):
        if key not in data:
            raise ValueError(f"{where}: no {key!r} array (has {', '.join(sorted(data))})")
    obs, action = data[obs_key], data["action"]
    if action.ndim == 1:
        action = action[:, None]
    stacked = action.ndim == 3
    if not stacked:
        data = {k: v[None] for k, v in data.items()}
        obs, action = obs[None], action[None]
    lengths = data.get("length", np.full(action.shape[0], action.shape[1]))
    out = []
    for i, n in enumerate(lengths.astype(int)):
        episode = {"obs": obs[i, : n + 1], "action": action[i, :n], "reward": data["reward"][i, :n]}
        for flag in ("terminated", "truncated"):
            if flag in data:
                episode[flag] = data[flag][i, :n]
        out.append(episode)
    return out


def _tensor(value: Any, dtype: torch.dtype | None = None) -> Tensor:
    out = value.detach().cpu() if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    return out if dtype is None else out.to(dtype)
