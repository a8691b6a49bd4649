import subprocess
import sys
import tempfile
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from envs import OBS_MODES, TASKS
from envs.tasks import get_task, make_env
from envs.wrappers import StepBudget

from .conftest import TASK_PARAMS


def _check(env: gym.Env) -> None:
    with warnings.catch_warnings():
        # check_env warns that it is given a wrapped env: checking the wrapped stack is the point.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        # MuJoCo's state vectors are unbounded by design.
        warnings.filterwarnings("ignore", message=".*Box observation space m.* infinity.*")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("mode", OBS_MODES)
@pytest.mark.parametrize("name", TASK_PARAMS)
def test_every_task_passes_check_env(name, mode):
    env = make_env(name, mode, seed=0)
    _check(env)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    if mode != "state":
        pixels = obs if mode == "pixels" else obs["pixels"]
        assert pixels.shape == (3, 64, 64) and pixels.dtype == np.uint8
        assert pixels.std() > 0  # a drawn scene, not a blank buffer
    env.close()


@pytest.mark.parametrize("name", TASK_PARAMS)
def test_preference_prefers_the_goal_and_success_agrees(name):
    task = get_task(name)
    env = make_env(name, seed=0)
    obs, _ = env.reset(seed=0)
    env.close()
    goal, far = task.goal_observation(obs), task.far_observation(obs)
    assert goal.shape == far.shape == obs.shape
    assert task.log_preference(goal) > task.log_preference(far)
    assert task.success(goal) and not task.success(far)


@pytest.mark.parametrize("name", TASK_PARAMS)
def test_log_preference_takes_torch_batches_and_numpy(name):
    task = get_task(name)
    batch = np.stack([task.goal_observation(), task.far_observation()])
    from_numpy = task.log_preference(batch)
    from_torch = task.log_preference(torch.as_tensor(batch))
    assert isinstance(from_numpy, torch.Tensor) and from_numpy.shape == (2,)
    torch.testing.assert_close(from_numpy, from_torch)
    assert task.log_preference(batch[0]).shape == ()
    assert task.success(batch).tolist() == [True, False]


def test_continuous_actions_are_rescaled_to_unit_box():
    env = make_env("inverted-pendulum")  # Gymnasium's action space is [-3, 3]
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    assert env.unwrapped.action_space.high[0] == 3.0


def test_action_repeat_sums_rewards_of_the_repeated_steps():
    once = make_env("pendulum", action_repeat=1)
    twice = make_env("pendulum", action_repeat=2)
    once.reset(seed=3)
    twice.reset(seed=3)
    action = np.array([0.5], dtype=np.float32)
    rewards = [once.step(action)[1] for _ in range(2)]
    obs, reward, *_ = twice.step(action)
    assert reward == pytest.approx(sum(rewards))
    np.testing.assert_allclose(obs, once.unwrapped._get_obs())


def test_episode_length_is_the_task_length_over_the_repeat():
    env = make_env("pendulum", action_repeat=4, seed=0)  # 200 steps -> 50 actions
    steps, truncated = 0, False
    while not truncated:
        *_, truncated, _ = env.step(env.action_space.sample())
        steps += 1
    assert steps == get_task("pendulum").max_episode_steps // 4


def test_step_budget_truncates_across_episodes_at_the_limit():
    env = StepBudget(make_env("pendulum", action_repeat=4, seed=0), limit=70)  # 50 per episode
    ends = []
    for _ in range(2):
        env.reset(seed=1)
        truncated = False
        while not truncated:
            *_, truncated, _ = env.step(env.action_space.sample())
        ends.append(env.steps)
    assert ends == [50, 70]
    env.steps = 69  # a resumed run sets the count it continues from
    env.reset(seed=1)
    assert env.step(env.action_space.sample())[3]
    with pytest.raises(ValueError, match="step budget"):
        StepBudget(env, limit=0)


def test_unknown_task_and_mode_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown task 'reachr'; valid: .*reacher"):
        make_env("reachr")
    with pytest.raises(ValueError, match=r"invalid obs_mode 'rgb'; valid: state, pixels, both"):
        make_env("pendulum", "rgb")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**environ, **env}
    )


def test_importing_tasks_and_listing_them_imports_no_mujoco_or_jax():
    code = (
        "import sys, envs.tasks, runs.cli; runs.cli.main(['list']);"
        "heavy = [m for m in ('mujoco', 'jax', 'gymnasium_robotics') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    for name in TASKS:
        assert name in result.stdout


@pytest.mark.mujoco
def test_gl_backend_is_selected_when_mujoco_gl_is_unset():
    code = (
        "import os; from envs.tasks import make_env;"
        "obs, _ = make_env('reacher', 'pixels', seed=0).reset();"
        "assert obs.std() > 0; print(os.environ['MUJOCO_GL'])"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("egl", "osmesa")


def test_no_working_gl_backend_names_the_fix():
    code = "import envs.rendering as r; r._backend_works = lambda b: False; r.select_gl_backend()"
    result = _python(code)
    assert result.returncode != 0
    assert "RenderingError" in result.stderr
    assert "bash scripts/install_system_deps.sh" in result.stderr


def test_robotics_task_without_the_extra_names_the_install():
    code = (
        "import sys; sys.modules['gymnasium_robotics'] = None;"
        "from runs import cli; sys.exit(cli.main(['record', '--env', 'point-maze']))"
    )
    result = _python(code)
    assert result.returncode == 2, result.stderr
    assert "pip install -e .[robotics]" in result.stderr


@pytest.mark.mujoco
def test_building_the_maze_leaves_no_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = make_env("point-maze", seed=0)
    env.step(env.action_space.sample())  # the model was loaded before its file went
    assert list(tmp_path.iterdir()) == []
    assert tempfile.tempdir == str(tmp_path)
