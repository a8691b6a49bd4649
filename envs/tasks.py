"""The tasks agents are compared on: each has a reward *and* a preference for the same goal.

A :class:`TaskSpec` names a Gymnasium id with the episode length and action repeat used
here, the camera its frames are drawn from, and its preference (``envs.preferences``),
whose ``success`` is the task's goal test. :func:`make_env` builds the wrapped env in one
of the observation modes ``state``, ``pixels`` (``(3, size, size)`` uint8) or ``both``.

Importing this module does not import MuJoCo; :func:`make_env` selects the offscreen GL
backend before it does (see ``envs.rendering``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from envs import OBS_MODES, TASKS, discrete
from envs.preferences import CategoricalPreference, Feature, FeatureGoal, Obs, Preference
from envs.rendering import (
    CameraSpec,
    FrameFn,
    MujocoFrames,
    ResizedRender,
    quiet_headless_pygame,
    select_gl_backend,
)
from envs.wrappers import (
    ActionRepeat,
    DiscreteIndex,
    FlattenDict,
    PixelObservation,
    unit_actions,
)

KINDS = ("classic", "mujoco", "discrete", "robotics")
# Kinds whose physics and frames come from MuJoCo.
MUJOCO_KINDS = ("mujoco", "robotics")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task: what to build, how long an episode is, and what its goal is."""

    name: str
    gym_id: str
    max_episode_steps: int
    """Episode length in environment steps (before action repeat)."""
    action_repeat: int
    """Default number of environment steps per agent action."""
    description: str
    reward: str
    """What the reward pays, in words."""
    goal: str
    """The preference and its success test, in words."""
    kind: str = "mujoco"
    """classic | mujoco | discrete | robotics."""
    features: tuple[Feature, ...] = ()
    """Preferred state features (a :class:`FeatureGoal`), unless ``preference_factory``."""
    obs_dim: int = 0
    preference_factory: Callable[[], Preference] | None = None
    camera: CameraSpec | None = None
    """Camera for MuJoCo frames."""
    target_speed: float | None = None
    """Locomotion: the preferred forward speed (m/s)."""
    make_kwargs: tuple[tuple[str, Any], ...] = ()
    """Extra keyword arguments for ``gym.make``."""
    solved_return: float | None = None
    """Evaluation return at which the task counts as solved (Gymnasium's reward_threshold
    where it has one): studies report the env steps each agent needs to reach it."""
    hold_goal: bool = False
    """The goal is a state to hold (balancing, swinging up and holding): an episode
    succeeds when the goal test holds at its last step. Otherwise (reaching) it succeeds
    when the test held at some step. A balancing task starts inside its goal, so "at some
    step" would count every episode."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(KINDS)}")
        if self.preference_factory is None and not self.features:
            raise ValueError(f"task {self.name!r} needs features or a preference_factory")

    @functools.cached_property
    def preference(self) -> Preference:
        """The task's preference over (state) observations, built on first use."""
        if self.preference_factory is not None:
            return self.preference_factory()
        return FeatureGoal(self.features, self.obs_dim)

    def log_preference(self, obs: Obs) -> Any:
        """``log p̃(o)`` of state observations: ``(..., D) -> (...)`` torch tensor."""
        return self.preference.log_preference(obs)

    def success(self, obs: Obs) -> np.ndarray:
        """The goal test on state observations: ``(..., D) -> (...)`` bools."""
        return self.preference.success(obs)

    def episode_success(self, so_far: bool, held: bool) -> bool:
        """An episode's success after a step whose goal test gave ``held``, ``so_far``
        being its success before that step (see :attr:`hold_goal`)."""
        return held if self.hold_goal else so_far or held

    def goal_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """A hand-made observation that meets the goal (``base`` with the goal written in)."""
        return self.preference.goal_observation(base)

    def far_observation(self, base: np.ndarray | None = None) -> np.ndarray:
        """A hand-made observation far from the goal."""
        return self.preference.far_observation(base)

    def make(self, obs_mode: str = "state", **kwargs: Any) -> gym.Env:
        """Shorthand for :func:`make_env` with this task."""
        return make_env(self.name, obs_mode, **kwargs)

    def frames(self, env: gym.Env, size: int, fast: bool = True) -> FrameFn:
        """A frame source for ``env`` (built by :func:`make_env`): ``() -> (size, size, 3)``.

        ``fast`` frames are for observations; ``fast=False`` keeps the model's prettier
        settings, for videos people watch.
        """
        if self.kind in MUJOCO_KINDS:
            base = env.unwrapped
            return MujocoFrames(base.model, base.data, size, self.camera or CameraSpec(), fast)
        return ResizedRender(env.unwrapped, size)


def _mujoco_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings to Python's ``warnings`` (shown once) instead of a file.

    Without a handler MuJoCo appends each warning to ``MUJOCO_LOG.TXT`` in the working
    directory (HalfCheetah's model warns on every load). A handler set by the user stays.
    """
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


@contextlib.contextmanager
def _scratch_temp_files() -> Iterator[None]:
    """Temporary files made inside the block go to a folder deleted after it.

    Envs are built inside it: gymnasium-robotics' mazes write their MuJoCo model to
    ``<tempdir>/ant_maze<time>.xml`` and never delete it (one file per env built); MuJoCo
    has read it once the env exists.
    """
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory() as scratch:
        tempfile.tempdir = scratch
        try:
            yield
        finally:
            tempfile.tempdir = previous


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` registered as ``name`` in ``envs.TASKS``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(sorted(TASKS))}")
    module, _, attr = TASKS[name][0].partition(":")
    return getattr(importlib.import_module(module), attr)


def make_env(
    name: str,
    obs_mode: str = "state",
    action_repeat: int | None = None,
    seed: int | None = None,
    render_size: int = 64,
) -> gym.Env:
    """Build task ``name`` wrapped for agents.

    The stack, inside out: the Gymnasium env with its ``TimeLimit`` of
    ``max_episode_steps``, :class:`~envs.wrappers.ActionRepeat` (when the repeat is above
    1), actions rescaled to [-1, 1] (when they are not already), and
    :class:`~envs.wrappers.PixelObservation` in ``pixels`` / ``both`` mode
    (``(3, render_size, render_size)`` uint8 frames). With ``seed`` the env is reset
    once with it and its action space seeded, so later ``reset()`` calls are reproducible.
    """
    task = get_task(name)
    if obs_mode not in OBS_MODES:
        raise ValueError(f"invalid obs_mode {obs_mode!r}; valid: {', '.join(OBS_MODES)}")
    repeat = task.action_repeat if action_repeat is None else action_repeat
    if repeat < 1:
        raise ValueError(f"action_repeat must be >= 1, got {repeat}")
    if render_size < 1:
        raise ValueError(f"render_size must be >= 1, got {render_size}")

    kwargs = dict(task.make_kwargs)
    if task.kind in MUJOCO_KINDS:
        select_gl_backend()  # before gym.make imports mujoco
        _route_mujoco_warnings()
    else:
        quiet_headless_pygame()
        kwargs["render_mode"] = "rgb_array"
    with _scratch_temp_files():
        env = gym.make(
            task.gym_id,
            max_episode_steps=task.max_episode_steps,
            disable_env_checker=True,
            **kwargs,
        )
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FlattenDict(env)
    if isinstance(env.observation_space, gym.spaces.Discrete):
        env = DiscreteIndex(env)
    if repeat > 1:
        env = ActionRepeat(env, repeat)
    env = unit_actions(env)
    if obs_mode != "state":
        env = PixelObservation(env, render_size, task.frames, keep_state=obs_mode == "both")
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


for _gym_id, _entry in (
    ("activegen/TMaze-v0", "envs.discrete:TMazeEnv"),
    ("activegen/GridWorld-v0", "envs.discrete:GridWorldEnv"),
    ("activegen/CueChaining-v0", "envs.discrete:CueChainingEnv"),
):
    if _gym_id not in gym.registry:
        gym.register(_gym_id, entry_point=_entry)


def _tmaze_preference() -> Preference:
    return CategoricalPreference(
        discrete.tmaze_model().C,
        goal_modality=1,
        goal_outcomes=[discrete.REWARD],
        goal=[discrete.LEFT, discrete.REWARD, discrete.NO_CUE],
        far=[discrete.LEFT, discrete.PUNISHMENT, discrete.NO_CUE],
    )


def _gridworld_preference() -> Preference:
    cols = discrete.GRID_SHAPE[1]
    goal = discrete.GRID_GOAL[0] * cols + discrete.GRID_GOAL[1]
    start = discrete.GRID_START[0] * cols + discrete.GRID_START[1]
    return CategoricalPreference(
        discrete.gridworld_model().C,
        goal_modality=0,
        goal_outcomes=[goal],
        goal=[goal],
        far=[start],
    )


def _cue_chaining_preference() -> Preference:
    model = discrete.cue_chaining_model()
    cols = discrete.CC_SHAPE[1]
    cheese = discrete.CC_REWARDS[0][0] * cols + discrete.CC_REWARDS[0][1]
    return CategoricalPreference(
        model.C,
        goal_modality=3,
        goal_outcomes=[discrete.CHEESE],
        goal=[cheese, 0, 0, discrete.CHEESE],
        far=[cheese, 0, 0, discrete.SHOCK],
    )


def _frozenlake_preference() -> Preference:
    model = discrete.frozenlake_model()
    goal = int(np.argmax(model.reward[0]))
    hole = int(np.argmin(model.C[0]))
    return CategoricalPreference(
        model.C, goal_modality=0, goal_outcomes=[goal], goal=[goal], far=[hole]
    )


def _locomotion(
    name: str,
    gym_id: str,
    description: str,
    speed: float,
    speed_index: int,
    obs_dim: int,
    upright: tuple[Feature, ...],
    camera_distance: float,
) -> TaskSpec:
    return TaskSpec(
        name=name,
        gym_id=gym_id,
        max_episode_steps=1000,
        action_repeat=2,
        description=description,
        reward="forward velocity minus control cost (plus a healthy bonus where it can fall)",
        goal=f"forward speed N({speed}, {speed / 4}) and upright; success: speed within "
        f"{speed / 2:g} of {speed:g} m/s and upright",
        features=(Feature("forward speed", speed_index, speed, speed / 4, far=0.0), *upright),
        obs_dim=obs_dim,
        camera=CameraSpec(distance=camera_distance, elevation=-15, track_body="torso"),
        target_speed=speed,
    )


PENDULUM = TaskSpec(
    name="pendulum",
    gym_id="Pendulum-v1",
    solved_return=-200.0,
    max_episode_steps=200,
    action_repeat=2,
    hold_goal=True,
    description=TASKS["pendulum"][1],
    reward="minus angle², angular velocity² and torque² costs",
    goal="cos θ ~ N(1, 0.05), θ' ~ N(0, 0.5); success: cos θ >= 0.95 and |θ'| <= 1",
    kind="classic",
    features=(
        Feature("cos angle", 0, 1.0, 0.05, low=0.95, high=1.0, far=-1.0),
        Feature("angular velocity", 2, 0.0, 0.5),
    ),
    obs_dim=3,
)

MOUNTAINCAR = TaskSpec(
    name="mountaincar",
    gym_id="MountainCarContinuous-v0",
    solved_return=90.0,
    max_episode_steps=999,
    action_repeat=4,
    description=TASKS["mountaincar"][1],
    reward="+100 at the flag minus 0.1 action²",
    goal="position ~ N(0.5, 0.05); success: position >= 0.45 (the flag)",
    kind="classic",
    features=(Feature("position", 0, 0.5, 0.05, low=0.45, high=np.inf, far=-0.5),),
    obs_dim=2,
)

INVERTED_PENDULUM = TaskSpec(
    name="inverted-pendulum",
    gym_id="InvertedPendulum-v5",
    solved_return=950.0,
    max_episode_steps=1000,
    action_repeat=2,
    hold_goal=True,
    description=TASKS["inverted-pendulum"][1],
    reward="+1 per step while the pole is up (|angle| <= 0.2)",
    goal="angle ~ N(0, 0.05), angular velocity ~ N(0, 0.5), cart ~ N(0, 0.25), cart "
    "velocity ~ N(0, 0.25); success: |angle| <= 0.1, |ω| <= 1",
    features=(
        # The cart is no part of the reward, but a cart at the end of its rail cannot step
        # under the pole: without its place and speed, planners balanced while the cart
        # drifted (a random walk of its unscored velocity) into the rail's end, and dropped
        # the pole there. Even CEM on a near-exact linear model did (README).
        Feature("cart position", 0, 0.0, 0.25, low=-np.inf, high=np.inf),
        Feature("pole angle", 1, 0.0, 0.05, far=0.2),
        Feature("cart velocity", 2, 0.0, 0.25, low=-np.inf, high=np.inf),
        Feature("pole angular velocity", 3, 0.0, 0.5),
    ),
    obs_dim=4,
    camera=CameraSpec(distance=2.6, elevation=0, lookat=(0.0, 0.0, 0.25)),
)

INVERTED_DOUBLE_PENDULUM = TaskSpec(
    name="inverted-double-pendulum",
    gym_id="InvertedDoublePendulum-v5",
    solved_return=9100.0,
    max_episode_steps=1000,
    action_repeat=2,
    hold_goal=True,
    description=TASKS["inverted-double-pendulum"][1],
    reward="alive bonus minus tip distance from upright and velocity penalties",
    goal="cos of both angles ~ N(1, 0.02), angular velocities ~ N(0, 1); success: "
    "cos >= 0.96 and |ω| <= 2",
    features=(
        Feature("cos angle 1", 3, 1.0, 0.02, low=0.96, high=1.0, far=0.5),
        Feature("cos angle 2", 4, 1.0, 0.02, low=0.96, high=1.0, far=0.5),
        Feature("angular velocity 1", 6, 0.0, 1.0),
        Feature("angular velocity 2", 7, 0.0, 1.0),
    ),
    obs_dim=9,
    camera=CameraSpec(distance=3.6, elevation=0, lookat=(0.0, 0.0, 0.55)),
)

REACHER = TaskSpec(
    name="reacher",
    gym_id="Reacher-v5",
    solved_return=-3.75,
    max_episode_steps=50,
    action_repeat=1,
    description=TASKS["reacher"][1],
    reward="minus fingertip-target distance minus control cost",
    goal="fingertip - target (x, y), in the observation, ~ N(0, 0.01); success: both within 0.02",
    features=(
        Feature("fingertip - target x", 8, 0.0, 0.01, far=0.15),
        Feature("fingertip - target y", 9, 0.0, 0.01, far=0.15),
    ),
    obs_dim=10,
    camera=CameraSpec(distance=0.6, elevation=-90, lookat=(0.0, 0.0, 0.0)),
)

PUSHER = TaskSpec(
    name="pusher",
    gym_id="Pusher-v5",
    max_episode_steps=100,
    action_repeat=1,
    description=TASKS["pusher"][1],
    reward="minus object-goal and fingertip-object distances minus control cost",
    goal="object - goal (x, y) ~ N(0, 0.03); success: both within 0.05",
    features=(
        Feature("object - goal x", 17, 0.0, 0.03, minus=20, low=-0.05, high=0.05, far=0.3),
        Feature("object - goal y", 18, 0.0, 0.03, minus=21, low=-0.05, high=0.05, far=0.3),
    ),
    obs_dim=23,
    camera=CameraSpec(distance=1.9, elevation=-55, azimuth=150, lookat=(0.2, -0.3, -0.3)),
)

HALF_CHEETAH = _locomotion(
    "half-cheetah",
    "HalfCheetah-v5",
    TASKS["half-cheetah"][1],
    speed=2.0,
    speed_index=8,
    obs_dim=17,
    camera_distance=3.5,
    upright=(Feature("torso angle", 1, 0.0, 0.5, far=3.0),),
)

HOPPER = _locomotion(
    "hopper",
    "Hopper-v5",
    TASKS["hopper"][1],
    speed=1.0,
    speed_index=5,
    obs_dim=11,
    camera_distance=3.0,
    upright=(
        Feature("torso height", 0, 1.25, 0.15, low=0.7, high=2.0, far=0.3),
        Feature("torso angle", 1, 0.0, 0.1, far=1.0),
    ),
)

WALKER2D = _locomotion(
    "walker2d",
    "Walker2d-v5",
    TASKS["walker2d"][1],
    speed=1.0,
    speed_index=8,
    obs_dim=17,
    camera_distance=3.0,
    upright=(
        Feature("torso height", 0, 1.25, 0.15, low=0.8, high=2.0, far=0.3),
        Feature("torso angle", 1, 0.0, 0.25, far=1.5),
    ),
)

TMAZE = TaskSpec(
    name="tmaze",
    gym_id="activegen/TMaze-v0",
    max_episode_steps=5,
    action_repeat=1,
    description=TASKS["tmaze"][1],
    reward="+1 for the reward outcome, -1 for punishment",
    goal="C: log-preference +2 for reward, -3 for punishment; success: reward observed",
    kind="discrete",
    preference_factory=_tmaze_preference,
)

GRIDWORLD = TaskSpec(
    name="gridworld",
    gym_id="activegen/GridWorld-v0",
    max_episode_steps=20,
    action_repeat=1,
    description=TASKS["gridworld"][1],
    reward="+1 on reaching the goal cell (ends the episode)",
    goal="C: log-preference +3 for the goal cell; success: at the goal",
    kind="discrete",
    preference_factory=_gridworld_preference,
)

CUE_CHAINING = TaskSpec(
    name="cue-chaining",
    gym_id="activegen/CueChaining-v0",
    max_episode_steps=20,
    action_repeat=1,
    description=TASKS["cue-chaining"][1],
    reward="+1 for cheese, -1 for a shock (entering either reward location ends the episode)",
    goal="C: log-preference +2 for cheese, -4 for a shock; success: cheese observed",
    kind="discrete",
    preference_factory=_cue_chaining_preference,
)

FROZENLAKE = TaskSpec(
    name="frozenlake",
    gym_id=discrete.FROZENLAKE_ID,
    max_episode_steps=100,
    action_repeat=1,
    description=TASKS["frozenlake"][1],
    reward="+1 on reaching the goal (Gymnasium's; holes and the goal end the episode)",
    goal="C: log-preference +3 for the goal cell, -3 for holes; success: at the goal",
    kind="discrete",
    preference_factory=_frozenlake_preference,
)
