import numpy as np
import pytest
import torch

from runs.checkpoint import load_checkpoint, save_checkpoint
from world_models.replay import ReplayBuffer


def _episode(episode_id: int, steps: int, terminated: bool = False):
    """Observations ``(id, t)``; actions and rewards encode ``t`` too, to check alignment."""
    obs = np.stack([np.full(steps + 1, episode_id), np.arange(steps + 1)], 1).astype(np.float32)
    actions = np.arange(1, steps + 1, dtype=np.float32)[:, None]
    rewards = np.arange(1, steps + 1, dtype=np.float32) * 10
    flags = np.zeros(steps, bool)
    if terminated:
        flags[-1] = True
    return obs, actions, rewards, flags


def _fill(buffer: ReplayBuffer, lengths, stepwise_every: int = 2, first_id: int = 0) -> None:
    """Add episodes, every ``stepwise_every``-th one step by step, the rest whole."""
    for k, steps in enumerate(lengths):
        obs, actions, rewards, flags = _episode(first_id + k, steps, terminated=k % 3 == 0)
        if k % stepwise_every == 0:
            buffer.start_episode(obs[0])
            for t in range(steps):
                last = t == steps - 1
                buffer.add(
                    actions[t], rewards[t], obs[t + 1], bool(flags[t]), last and not flags[t]
                )
        else:
            buffer.add_episode(obs, actions, rewards, terminated=flags)


def _check_chunks(chunk) -> None:
    ids, times = chunk.obs[..., 0], chunk.obs[..., 1]
    assert (ids == ids[:, :1]).all(), "a chunk mixes episodes"
    assert (times.diff(dim=1) == 1).all(), "a chunk skips or repeats steps"
    assert torch.equal(chunk.is_first, times == 0)
    # Row t holds the action and reward that led to observation t (zero at the first row).
    assert torch.equal(chunk.action[..., 0], times)
    assert torch.equal(chunk.reward, times * 10)


def test_sampled_chunks_never_cross_episodes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 30, size=40).tolist()
    buffer = ReplayBuffer(300, (2,), 1)  # far smaller than the 40 episodes: it wraps
    _fill(buffer, lengths)
    assert len(buffer) <= 300
    torch.manual_seed(0)
    for length in (1, 4, 12):
        _check_chunks(buffer.sample(256, length))
    for episode in buffer.episodes():
        _check_chunks(episode)
    _check_chunks(buffer.transitions())


def test_chunks_across_episodes_run_on_in_order_and_mark_each_start():
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 6, size=60).tolist()  # episodes of 2 to 6 rows
    buffer = ReplayBuffer(150, (2,), 1)  # it wraps: no chunk may run from newest to oldest
    _fill(buffer, lengths)
    assert buffer.max_chunk() == max(buffer.episode_lengths())
    assert buffer.max_chunk(across_episodes=True) > 3 * buffer.max_chunk()
    with pytest.raises(ValueError, match="longest"):
        buffer.sample(4, 12)  # no single episode holds 12 rows
    torch.manual_seed(0)
    chunk = buffer.sample(512, 12, across_episodes=True)
    ids, times = chunk.obs[..., 0], chunk.obs[..., 1]
    same = ids[:, 1:] == ids[:, :-1]
    # Within an episode rows advance by one; where the episode changes it is the next
    # one, from its first row, and is_first marks exactly those rows.
    assert (times.diff(dim=1)[same] == 1).all()
    assert (ids.diff(dim=1)[~same] == 1).all()
    assert torch.equal(chunk.is_first, times == 0)
    assert bool(chunk.is_first[:, 1:].any())
    assert torch.equal(chunk.action[..., 0], times)
    # Every stored episode is reached, not only those of 12 rows or more (none).
    assert set(ids.unique().tolist()) == {int(e.obs[0, 0, 0]) for e in buffer.episodes()}


def test_oldest_whole_episodes_are_evicted():
    buffer = ReplayBuffer(100, (2,), 1)
    _fill(buffer, [20] * 12)  # 12 episodes of 21 rows in room for 100 rows
    ids = [int(e.obs[0, 0, 0]) for e in buffer.episodes()]
    assert ids == list(range(12 - len(ids), 12))  # the newest, in order
    assert [e.obs.shape[1] for e in buffer.episodes()] == [21] * len(ids)  # intact
    assert buffer.num_steps == 20 * len(ids)


def test_chunks_longer_than_every_episode_are_an_error():
    buffer = ReplayBuffer(50, (2,), 1)
    _fill(buffer, [3, 4])
    assert buffer.num_chunks(5) == 1
    with pytest.raises(ValueError, match="longest: 5"):
        buffer.sample(2, 6)


def test_checkpoint_restores_sampling_and_eviction_exactly(tmp_path):
    rng = np.random.default_rng(1)
    buffer = ReplayBuffer(200, (2,), 1)
    _fill(buffer, rng.integers(5, 25, size=15).tolist())
    buffer.start_episode(_episode(99, 3)[0][0])  # an open episode is saved too
    save_checkpoint({"replay": buffer.state_dict()}, tmp_path / "c.pt")
    restored = ReplayBuffer(200, (2,), 1)
    restored.load_state_dict(load_checkpoint(tmp_path / "c.pt")["replay"])

    for b in (buffer, restored):  # the same history from here on, wrapping again
        b.add(np.ones(1), 1.0, np.array([99, 1]), False, True)
        _fill(b, [17, 9, 23, 11], first_id=100)
    assert buffer.episode_lengths() == restored.episode_lengths()
    torch.manual_seed(5)
    expected = buffer.sample(64, 6)
    torch.manual_seed(5)
    got = restored.sample(64, 6)
    for name in ("obs", "action", "reward", "terminated", "truncated", "is_first"):
        assert torch.equal(getattr(expected, name), getattr(got, name)), name


def test_pixels_are_stored_as_uint8_and_rollouts_load(tmp_path):
    obs = np.random.default_rng(0).integers(0, 256, (11, 3, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "ep.npz", pixels=obs, action=np.zeros((10, 2)), reward=np.ones(10))
    buffer = ReplayBuffer.from_rollouts([tmp_path / "ep.npz"], obs_key="pixels")
    chunk = buffer.sample(3, 5)
    assert chunk.obs.dtype == torch.uint8 and chunk.obs.shape == (3, 5, 3, 8, 8)
    (episode,) = buffer.episodes()
    assert torch.equal(episode.obs[0], torch.from_numpy(obs))
    assert bool(episode.truncated[0, -1]) and not episode.terminated.any()
