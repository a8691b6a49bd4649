"""Tasks, wrappers and preferences. A leaf package: imports only gymnasium, mujoco and pymdp.

``TASKS`` maps a task name to ``("module:attr", one-line description)``; entries are
imported only when used (``envs.tasks.get_task`` or ``runs.registry.resolve("task", name)``)
and resolve to :class:`envs.tasks.TaskSpec` objects. Build an env with
``envs.tasks.make_env(name, obs_mode)``.
"""

TASKS: dict[str, tuple[str, str]] = {
    "pendulum": ("envs.tasks:PENDULUM", "Pendulum-v1: swing the pendulum up and hold it upright"),
    "mountaincar": (
        "envs.tasks:MOUNTAINCAR",
        "MountainCarContinuous-v0: rock the car out of the valley to the flag",
    ),
    "inverted-pendulum": (
        "envs.tasks:INVERTED_PENDULUM",
        "InvertedPendulum-v5: balance a pole on a cart",
    ),
    "inverted-double-pendulum": (
        "envs.tasks:INVERTED_DOUBLE_PENDULUM",
        "InvertedDoublePendulum-v5: balance two stacked poles on a cart",
    ),
    "reacher": ("envs.tasks:REACHER", "Reacher-v5: move the fingertip to a random target"),
    "pusher": ("envs.tasks:PUSHER", "Pusher-v5: push the object onto the goal with an arm"),
    "half-cheetah": ("envs.tasks:HALF_CHEETAH", "HalfCheetah-v5: run forward at a target speed"),
    "hopper": ("envs.tasks:HOPPER", "Hopper-v5: hop forward at a target speed without falling"),
    "walker2d": ("envs.tasks:WALKER2D", "Walker2d-v5: walk forward at a target speed upright"),
    "tmaze": ("envs.tasks:TMAZE", "T-maze (discrete): read the cue, then enter the rewarded arm"),
    "gridworld": ("envs.tasks:GRIDWORLD", "grid world (discrete): walk around walls to the goal"),
    "cue-chaining": (
        "envs.tasks:CUE_CHAINING",
        "cue chaining (discrete): the first cue points to a second, which shows the cheese",
    ),
    "frozenlake": (
        "envs.tasks:FROZENLAKE",
        "FrozenLake-v1 (Gymnasium, discrete, slippery): cross the ice to the goal, avoid holes",
    ),
    "point-maze": (
        "envs.robotics:POINT_MAZE",
        "PointMaze_UMaze-v3: move a ball through a U maze to a goal (extra: [robotics])",
    ),
}

OBS_MODES = ("state", "pixels", "both")


class MissingExtraError(ImportError):
    """A task needs an optional extra that is not installed; the message names the install."""
