"""Task parameters for the env tests: MuJoCo tasks carry the ``mujoco`` marker."""

import pytest

from envs import TASKS

NON_MUJOCO = ("pendulum", "mountaincar", "tmaze", "gridworld", "cue-chaining", "frozenlake")


def task_param(name: str):
    marks = [] if name in NON_MUJOCO else [pytest.mark.mujoco]
    return pytest.param(name, marks=marks, id=name)


TASK_PARAMS = [task_param(name) for name in TASKS]
