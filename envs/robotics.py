"""Goal-conditioned tasks from gymnasium-robotics, behind the optional ``[robotics]`` extra.

Only the point maze is offered: FetchReach-v4 fails an assertion of gymnasium-robotics
1.4.2 on mujoco >= 3.12 (joint-type enums compared with numpy ints) and would need a
patch of that package. Observations are the flattened goal dict:
``[achieved_goal (2), desired_goal (2), observation (4: x, y, vx, vy)]``.
"""

from __future__ import annotations

from envs import TASKS, MissingExtraError
from envs.preferences import Feature
from envs.rendering import CameraSpec, select_gl_backend
from envs.tasks import TaskSpec

select_gl_backend()  # gymnasium_robotics imports mujoco
try:
    import gymnasium as gym
    import gymnasium_robotics
except ImportError as e:
    raise MissingExtraError(
        "this task needs gymnasium-robotics, the optional robotics extra: "
        "pip install -e .[robotics]"
    ) from e

gym.register_envs(gymnasium_robotics)

POINT_MAZE = TaskSpec(
    name="point-maze",
    gym_id="PointMaze_UMaze-v3",
    max_episode_steps=300,
    action_repeat=1,
    description=TASKS["point-maze"][1],
    reward="sparse: 1 when the ball is within 0.45 of the goal (the episode then ends)",
    goal="achieved - desired goal (x, y) ~ N(0, 0.2); success: both within 0.3",
    kind="robotics",
    features=(
        Feature("ball - goal x", 0, 0.0, 0.2, minus=2, low=-0.3, high=0.3, far=2.0),
        Feature("ball - goal y", 1, 0.0, 0.2, minus=3, low=-0.3, high=0.3, far=2.0),
    ),
    obs_dim=8,
    camera=CameraSpec(distance=7.0, elevation=-90, lookat=(0.0, 0.0, 0.0)),
    make_kwargs=(("continuing_task", False),),
)
