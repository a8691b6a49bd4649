import gymnasium as gym
import numpy as np
import pytest

from envs import discrete
from envs.discrete import (
    CueChainingEnv,
    GridWorldEnv,
    TMazeEnv,
    cue_chaining_model,
    frozenlake_model,
    gridworld_model,
    model_of,
    tmaze_model,
)
from envs.tasks import make_env

MODELS = {
    "tmaze": tmaze_model,
    "gridworld": gridworld_model,
    "cue-chaining": cue_chaining_model,
    "frozenlake": frozenlake_model,
}


@pytest.mark.parametrize("name", MODELS)
def test_model_arrays_are_normalised_distributions(name):
    model = MODELS[name]()
    for a in model.A:
        np.testing.assert_allclose(a.sum(axis=0), 1.0)
    for b in model.B:
        np.testing.assert_allclose(b.sum(axis=0), 1.0)
    for d in model.D:
        np.testing.assert_allclose(d.sum(), 1.0)
    assert [c.shape[0] for c in model.C] == model.num_obs
    for a, deps in zip(model.A, model.A_dependencies, strict=True):
        assert a.shape[1:] == tuple(model.num_states[f] for f in deps)


def test_gridworld_steps_follow_b_and_observations_follow_a():
    env = GridWorldEnv()
    B = env.model.B[0]
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    assert obs[0] == info["state"][0] == 0  # D: the start cell (0, 0)
    for action in rng.integers(0, 5, size=40):
        before = env.state[0]
        obs, reward, terminated, _, info = env.step(action)
        assert info["state"][0] == np.argmax(B[:, before, action])  # deterministic B
        assert obs[0] == info["state"][0]  # A is the identity
        if terminated:
            assert reward == 1.0 and obs[0] == env.goal_index
            break


def test_gridworld_walls_block_moves():
    env = GridWorldEnv()
    env.reset(seed=0)
    env.step(discrete.GO_RIGHT)  # (0, 0) -> (0, 1)
    obs, *_ = env.step(discrete.DOWN)  # (1, 1) is a wall: stay
    assert obs[0] == 1


def test_tmaze_walk_to_the_cue_then_the_cued_arm_is_rewarded():
    env = TMazeEnv(cue_validity=1.0)
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        condition = info["state"][1]
        obs, *_ = env.step(discrete.CUE)
        assert obs[0] == discrete.CUE and obs[2] == discrete.CUE_LEFT + condition
        env.step(discrete.CENTRE)
        env.step(discrete.MIDDLE)
        arm = discrete.LEFT if obs[2] == discrete.CUE_LEFT else discrete.RIGHT
        obs, reward, terminated, _, _ = env.step(arm)
        assert (obs[1], reward, terminated) == (discrete.REWARD, 1.0, True)


def test_tmaze_moves_only_between_adjacent_locations():
    env = TMazeEnv()
    env.reset(seed=0)
    obs, *_ = env.step(discrete.LEFT)  # the arms are reached through the middle
    assert obs[0] == discrete.CENTRE


def test_tmaze_cue_is_right_with_the_cue_validity():
    env = TMazeEnv(cue_validity=0.8, reward_condition=0)
    hits = 0
    for seed in range(400):
        env.reset(seed=seed)
        obs, *_ = env.step(discrete.CUE)
        hits += obs[2] == discrete.CUE_LEFT
    assert abs(hits / 400 - 0.8) < 0.06  # 3 standard errors of a 400-sample proportion


def test_arrays_equal_pymdps_own_tmaze_and_gridworld():
    from pymdp.envs import GridWorld, TMaze

    grid = GridWorld(
        shape=discrete.GRID_SHAPE, walls=discrete.GRID_WALLS, initial_position=discrete.GRID_START
    )
    for model, env in ((tmaze_model(), TMaze()), (gridworld_model(), grid)):
        assert model.A_dependencies == env.A_dependencies
        assert model.B_dependencies == env.B_dependencies
        for key in ("A", "B", "D"):
            for mine, theirs in zip(getattr(model, key), getattr(env, key), strict=True):
                np.testing.assert_allclose(mine, np.asarray(theirs))


def test_arrays_equal_pymdps_own_cue_chaining_env():
    from pymdp.envs import CueChainingEnv as PymdpCueChaining

    model, theirs = cue_chaining_model(), PymdpCueChaining()
    assert model.A_dependencies == theirs.A_dependencies
    assert model.B_dependencies == theirs.B_dependencies
    for key in ("A", "B", "D"):
        for mine, other in zip(getattr(model, key), getattr(theirs, key), strict=True):
            np.testing.assert_allclose(mine, np.asarray(other))


def test_cue_chaining_cues_lead_to_the_cheese():
    env = CueChainingEnv(cue2_state=1, reward_condition=1)  # second cue at (1, 3); cheese (3, 5)
    env.reset(seed=0)
    for action in (discrete.CC_DOWN, discrete.CC_DOWN):  # (0, 0) -> (2, 0): the first cue
        obs, *_ = env.step(action)
    assert obs[1] == 1 + 1  # points to the second cue location, L2
    for action in (discrete.CC_UP, *[discrete.CC_RIGHT] * 3):  # -> (1, 3)
        obs, *_ = env.step(action)
    assert obs[2] == 1 + 1  # reward condition BOTTOM
    for action in (discrete.CC_DOWN, discrete.CC_DOWN, discrete.CC_RIGHT, discrete.CC_RIGHT):
        obs, reward, terminated, *_ = env.step(action)
        if terminated:
            break
    assert (obs[3], reward, terminated) == (discrete.CHEESE, 1.0, True)


@pytest.mark.parametrize("slippery", [True, False])
def test_frozenlake_model_is_gymnasiums_transition_table(slippery):
    model = frozenlake_model(is_slippery=slippery)
    env = gym.make("FrozenLake-v1", is_slippery=slippery)
    B = model.B[0]
    for s, moves in env.unwrapped.P.items():
        for a, outcomes in moves.items():
            for prob, nxt, _, _ in outcomes:
                assert B[nxt, s, a] >= prob - 1e-12
            assert B[:, s, a].sum() == pytest.approx(1.0)
    assert model.D[0][0] == 1.0 and model.reward[0][15] == 1.0 and model.H[0][15] == 1.0
    assert model.C[0][5] < 0 < model.C[0][15]  # (1, 1) is a hole, (3, 3) the goal


def test_frozenlake_task_observes_an_index_vector_and_samples_its_model():
    env = make_env("frozenlake", seed=0)
    assert env.observation_space == gym.spaces.MultiDiscrete([16])
    model = model_of(env)
    counts = np.zeros(16)
    for seed in range(300):
        obs, _ = env.reset(seed=seed)
        assert obs.tolist() == [0]
        obs, *_ = env.step(2)  # RIGHT from the start: right, down or stay (1/3 each)
        counts[obs[0]] += 1
    np.testing.assert_allclose(counts / 300, model.B[0][:, 0, 2], atol=0.09)  # 3 s.e. of 1/3
