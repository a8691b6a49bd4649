"""Discrete tasks for discrete active inference: T-maze, grid world, cue chaining, FrozenLake.

Each env is a Gymnasium env whose dynamics *are* a categorical generative process, exposed
as :class:`DiscreteModel` (``A``, ``B``, ``C``, ``D``) in the layout of pymdp 1.0, so an
agent can be given the true model or learn it:

- ``A[m]``: ``(num_obs[m], *state_dims of A_dependencies[m])``, ``P(o_m | s)``;
- ``B[f]``: ``(next, current, action)``, ``P(s_f' | s_f, a_f)`` (``B_dependencies[f] == [f]``);
- ``C[m]``: ``(num_obs[m],)`` log-preferences over outcomes (unnormalised);
- ``D[f]``: ``(num_states[f],)`` initial state prior.

The arrays are built exactly as ``pymdp.envs.TMaze``, ``pymdp.envs.GridWorld`` and
``pymdp.envs.CueChainingEnv`` build theirs (same factor, outcome and action order), in pure
numpy: this module imports neither pymdp nor JAX. Observations are one outcome index per
modality (``MultiDiscrete``). Gymnasium's ``FrozenLake-v1`` is used as it ships;
:func:`frozenlake_model` reads its generative model off the env's transition table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@dataclasses.dataclass(frozen=True)
class DiscreteModel:
    """A categorical POMDP in pymdp's layout (see the module docstring)."""

    A: list[np.ndarray]
    B: list[np.ndarray]
    C: list[np.ndarray]
    D: list[np.ndarray]
    A_dependencies: list[list[int]]
    B_dependencies: list[list[int]]
    reward: list[np.ndarray] = dataclasses.field(default_factory=list)
    """``reward[m]``: ``(num_obs[m],)`` the env's reward for each outcome of modality ``m``;
    a step's reward is the sum over modalities (so reward is a function of the outcome and
    can be turned into log-preferences)."""
    H: list[np.ndarray] | None = None
    """pymdp's ``H``: ``(num_states[f],)`` 1 on goal states, for inductive planning (tasks
    with a goal location only)."""
    cells: tuple[tuple[int, int], ...] = ()
    """The ``(row, col)`` on a drawing grid of each state of factor 0 (the location), for
    belief heat-maps."""

    @property
    def num_obs(self) -> list[int]:
        return [a.shape[0] for a in self.A]

    @property
    def num_states(self) -> list[int]:
        return [b.shape[0] for b in self.B]

    @property
    def num_controls(self) -> list[int]:
        return [b.shape[-1] for b in self.B]


class _CategoricalEnv(gym.Env):
    """Samples states from ``B`` and ``D`` and observations from ``A``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, model: DiscreteModel, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.model = model
        self.render_mode = render_mode
        self.observation_space = spaces.MultiDiscrete(model.num_obs)
        self.state = np.zeros(len(model.B), dtype=np.int64)
        self.last_obs = np.zeros(len(model.A), dtype=np.int64)

    def _sample(self, p: np.ndarray) -> int:
        # Inverse-CDF sampling: several times faster than Generator.choice(p=...) per draw.
        index = int(np.searchsorted(np.cumsum(p), self.np_random.random(), side="right"))
        return min(index, len(p) - 1)

    def _observe(self) -> np.ndarray:
        obs = [
            self._sample(a[(slice(None), *self.state[deps])])
            for a, deps in zip(self.model.A, self.model.A_dependencies, strict=True)
        ]
        self.last_obs = np.array(obs, dtype=np.int64)
        return self.last_obs.copy()

    def _transition(self, actions: Sequence[int]) -> None:
        self.state = np.array(
            [self._sample(b[:, self.state[f], actions[f]]) for f, b in enumerate(self.model.B)],
            dtype=np.int64,
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = np.array([self._sample(d) for d in self.model.D], dtype=np.int64)
        return self._observe(), {"state": self.state.copy()}


# -- T-maze -------------------------------------------------------------------------------

CENTRE, LEFT, RIGHT, CUE, MIDDLE = range(5)
NO_OUTCOME, REWARD, PUNISHMENT = range(3)
NO_CUE, CUE_LEFT, CUE_RIGHT = range(3)
_TMAZE_LINKS = {(CENTRE, CUE), (CENTRE, MIDDLE), (MIDDLE, LEFT), (MIDDLE, RIGHT)}
# Cells of a 3x3 drawing grid: arms and middle on top, centre below, cue at the bottom.
TMAZE_CELLS = {LEFT: (0, 0), MIDDLE: (0, 1), RIGHT: (0, 2), CENTRE: (1, 1), CUE: (2, 1)}


def tmaze_model(
    reward_probability: float = 1.0,
    punishment_probability: float = 1.0,
    cue_validity: float = 0.95,
    reward_condition: int | None = None,
    dependent_outcomes: bool = False,
    reward_preference: float = 2.0,
    punishment_preference: float = -3.0,
) -> DiscreteModel:
    """The T-maze of ``pymdp.envs.TMaze`` (with its default arguments) plus ``C``.

    Factors: location (centre, left arm, right arm, cue, middle) and reward condition
    (reward in the left arm, in the right arm). Modalities: location (identity), reward
    outcome (none, reward, punishment) and cue (none, cued left, cued right). Actions move
    to a location; moves between locations that are not adjacent leave the agent in place.
    ``C`` prefers reward (``reward_preference``) and avoids punishment, as in pymdp's
    T-maze tutorial.
    """
    n_loc = 5
    A_loc = np.eye(n_loc)
    A_reward = np.zeros((3, n_loc, 2))
    A_cue = np.zeros((3, n_loc, 2))
    for loc in range(n_loc):
        for cond in range(2):
            if loc in (CENTRE, MIDDLE):
                A_reward[NO_OUTCOME, loc, cond] = 1.0
                A_cue[NO_CUE, loc, cond] = 1.0
            elif loc == CUE:
                A_reward[NO_OUTCOME, loc, cond] = 1.0
                A_cue[CUE_LEFT + cond, loc, cond] = cue_validity
                A_cue[CUE_RIGHT - cond, loc, cond] = 1.0 - cue_validity
            else:
                A_cue[NO_CUE, loc, cond] = 1.0
                rewarded = loc == cond + 1
                if dependent_outcomes:
                    good, bad = (REWARD, PUNISHMENT) if rewarded else (PUNISHMENT, REWARD)
                    A_reward[good, loc, cond] = reward_probability
                    A_reward[bad, loc, cond] = 1.0 - reward_probability
                elif rewarded:
                    A_reward[REWARD, loc, cond] = reward_probability
                    A_reward[NO_OUTCOME, loc, cond] = 1.0 - reward_probability
                else:
                    A_reward[PUNISHMENT, loc, cond] = punishment_probability
                    A_reward[NO_OUTCOME, loc, cond] = 1.0 - punishment_probability

    B_loc = np.zeros((n_loc, n_loc, n_loc))
    for here in range(n_loc):
        for target in range(n_loc):
            linked = (here, target) in _TMAZE_LINKS or (target, here) in _TMAZE_LINKS
            B_loc[target if linked else here, here, target] = 1.0
    B_cond = np.eye(2).reshape(2, 2, 1)

    D_loc = np.eye(n_loc)[CENTRE]
    D_cond = np.full(2, 0.5) if reward_condition is None else np.eye(2)[reward_condition]
    C_reward = np.array([0.0, reward_preference, punishment_preference])
    return DiscreteModel(
        A=[A_loc, A_reward, A_cue],
        B=[B_loc, B_cond],
        C=[np.zeros(n_loc), C_reward, np.zeros(3)],
        D=[D_loc, D_cond],
        A_dependencies=[[0], [0, 1], [0, 1]],
        B_dependencies=[[0], [1]],
        reward=[np.zeros(n_loc), np.array([0.0, 1.0, -1.0]), np.zeros(3)],
        cells=tuple(TMAZE_CELLS[loc] for loc in range(n_loc)),
    )


class TMazeEnv(_CategoricalEnv):
    """The T-maze as a Gymnasium env: observations ``[location, reward outcome, cue]``.

    Action ``a`` moves to location ``a`` when it is adjacent. Reward is +1 for a reward
    outcome and -1 for a punishment; the episode ends when an arm is entered (the choice
    is made). ``info["state"]`` holds ``[location, reward condition]``.
    """

    def __init__(self, render_mode: str | None = None, **model_kwargs: Any):
        super().__init__(tmaze_model(**model_kwargs), render_mode)
        self.action_space = spaces.Discrete(5)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._transition([int(action), 0])
        obs = self._observe()
        reward = {REWARD: 1.0, PUNISHMENT: -1.0}.get(int(obs[1]), 0.0)
        terminated = bool(self.state[0] in (LEFT, RIGHT))
        return obs, reward, terminated, False, {"state": self.state.copy()}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        cells = TMAZE_CELLS
        grid = np.full((3, 3, 3), 40, dtype=np.uint8)
        for cell in cells.values():
            grid[cell] = 230
        loc, reward, cue = (int(v) for v in self.last_obs)
        if cue != NO_CUE:
            grid[cells[CUE]] = (230, 140, 30) if cue == CUE_LEFT else (140, 60, 200)
        if reward != NO_OUTCOME:
            grid[cells[loc]] = (60, 200, 60) if reward == REWARD else (220, 50, 50)
        return _draw_agent(grid, cells[loc])


# -- grid world ---------------------------------------------------------------------------

UP, GO_RIGHT, DOWN, GO_LEFT, STAY = range(5)
GRID_SHAPE = (5, 5)
GRID_WALLS = ((1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3))
GRID_START = (0, 0)
GRID_GOAL = (4, 4)


def gridworld_model(
    shape: tuple[int, int] = GRID_SHAPE,
    walls: Iterable[tuple[int, int]] = GRID_WALLS,
    start: tuple[int, int] = GRID_START,
    goal: tuple[int, int] = GRID_GOAL,
    include_stay: bool = True,
    success_prob: float = 1.0,
    goal_preference: float = 3.0,
) -> DiscreteModel:
    """The grid world of ``pymdp.envs.GridWorld(shape, walls, initial_position=start)``.

    One factor, the cell (linear index ``row * cols + col``), observed exactly. Actions UP,
    RIGHT, DOWN, LEFT (and STAY): a move into a wall or off the grid stays put, and a
    valid move succeeds with ``success_prob`` (else stays). ``C`` prefers the goal cell by
    ``goal_preference`` (log units) over every other cell.
    """
    rows, cols = shape
    n = rows * cols
    blocked = {r * cols + c for r, c in walls if 0 <= r < rows and 0 <= c < cols}
    start_index, goal_index = start[0] * cols + start[1], goal[0] * cols + goal[1]
    if start_index in blocked or goal_index in blocked:
        raise ValueError("the start and the goal must not be walls")

    B = np.zeros((n, n, 4 + int(include_stay)))
    for s in range(n):
        r, c = divmod(s, cols)
        for a, (nr, nc) in enumerate(((r - 1, c), (r, c + 1), (r + 1, c), (r, c - 1))):
            target = nr * cols + nc if 0 <= nr < rows and 0 <= nc < cols else -1
            if target < 0 or target in blocked:
                B[s, s, a] = 1.0
            else:
                B[target, s, a] = success_prob
                B[s, s, a] += 1.0 - success_prob
        if include_stay:
            B[s, s, STAY] = 1.0

    goal_cell = np.eye(n)[goal_index]
    return DiscreteModel(
        A=[np.eye(n)],
        B=[B],
        C=[goal_preference * goal_cell],
        D=[np.eye(n)[start_index]],
        A_dependencies=[[0]],
        B_dependencies=[[0]],
        reward=[goal_cell],
        H=[goal_cell],
        cells=_row_major(shape),
    )


class GridWorldEnv(_CategoricalEnv):
    """The grid world as a Gymnasium env: the observation is ``[cell index]``.

    Reward is +1 on reaching the goal, which ends the episode.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        shape: tuple[int, int] = GRID_SHAPE,
        walls: Iterable[tuple[int, int]] = GRID_WALLS,
        start: tuple[int, int] = GRID_START,
        goal: tuple[int, int] = GRID_GOAL,
        **model_kwargs: Any,
    ):
        walls = tuple(walls)
        super().__init__(gridworld_model(shape, walls, start, goal, **model_kwargs), render_mode)
        self.shape, self.walls, self.goal = shape, walls, goal
        self.goal_index = goal[0] * shape[1] + goal[1]
        self.action_space = spaces.Discrete(self.model.num_controls[0])

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._transition([int(action)])
        obs = self._observe()
        at_goal = bool(self.state[0] == self.goal_index)
        return obs, float(at_goal), at_goal, False, {"state": self.state.copy()}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        grid = np.full((*self.shape, 3), 230, dtype=np.uint8)
        for wall in self.walls:
            grid[wall] = 40
        grid[self.goal] = (60, 200, 60)
        return _draw_agent(grid, divmod(int(self.last_obs[0]), self.shape[1]))


def _draw_agent(grid: np.ndarray, cell: tuple[int, int], pixels: int = 16) -> np.ndarray:
    """Scale a ``(rows, cols, 3)`` cell image up by ``pixels`` and draw the agent in ``cell``."""
    image = np.repeat(np.repeat(grid, pixels, axis=0), pixels, axis=1)
    r, c = cell
    quarter = pixels // 4
    image[r * pixels + quarter : (r + 1) * pixels - quarter,
          c * pixels + quarter : (c + 1) * pixels - quarter] = (40, 90, 220)  # fmt: skip
    return image


def _row_major(shape: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(divmod(s, shape[1]) for s in range(shape[0] * shape[1]))


# -- cue chaining -------------------------------------------------------------------------

CC_UP, CC_DOWN, CC_LEFT, CC_RIGHT, CC_STAY = range(5)
CC_SHAPE = (5, 7)
CC_START = (0, 0)
CC_CUE1 = (2, 0)
CC_CUE2 = ((0, 2), (1, 3), (3, 3), (4, 2))
CC_REWARDS = ((1, 5), (3, 5))
NULL, CHEESE, SHOCK = range(3)


def cue_chaining_model(
    shape: tuple[int, int] = CC_SHAPE,
    start: tuple[int, int] = CC_START,
    cue1: tuple[int, int] = CC_CUE1,
    cue2: Sequence[tuple[int, int]] = CC_CUE2,
    rewards: Sequence[tuple[int, int]] = CC_REWARDS,
    cue2_state: int | None = None,
    reward_condition: int | None = None,
    cheese_preference: float = 2.0,
    shock_preference: float = -4.0,
) -> DiscreteModel:
    """The cue-chaining grid of ``pymdp.envs.CueChainingEnv`` (default arguments) plus ``C``.

    Factors: location (``row * cols + col``), which second cue is informative (one per
    ``cue2`` location) and the reward condition (cheese at ``rewards[0]`` or ``[1]``).
    Modalities: location (identity); cue 1 (null, or the informative cue-2 location when
    standing on ``cue1``); cue 2 (null, or the reward condition when standing on the
    informative cue-2 location); reward (null, cheese, shock: at a reward location, cheese
    where the condition puts it). Actions UP, DOWN, LEFT, RIGHT, STAY; moves off the grid
    stay put (there are no walls). ``C`` prefers cheese and avoids shocks, as pymdp's
    cue-chaining demo does.
    """
    rows, cols = shape
    n_loc, n_cue2, n_cond = rows * cols, len(cue2), len(rewards)
    if n_cond != 2:
        raise ValueError("cue chaining needs exactly two reward locations")

    def index(cell: Sequence[int]) -> int:
        return int(cell[0]) * cols + int(cell[1])

    cue1_index = index(cue1)
    cue2_index = [index(c) for c in cue2]
    reward_index = [index(c) for c in rewards]

    A_cue1 = np.zeros((1 + n_cue2, n_loc, n_cue2))
    A_cue1[NULL] = 1.0
    A_cue1[NULL, cue1_index] = 0.0
    for k in range(n_cue2):
        A_cue1[1 + k, cue1_index, k] = 1.0
    A_cue2 = np.zeros((1 + n_cond, n_loc, n_cue2, n_cond))
    A_cue2[NULL] = 1.0
    for k, loc in enumerate(cue2_index):
        A_cue2[NULL, loc, k] = 0.0
        for cond in range(n_cond):
            A_cue2[1 + cond, loc, k, cond] = 1.0
    A_reward = np.zeros((3, n_loc, n_cond))
    A_reward[NULL] = 1.0
    for place, loc in enumerate(reward_index):
        A_reward[NULL, loc] = 0.0
        for cond in range(n_cond):
            A_reward[CHEESE if place == cond else SHOCK, loc, cond] = 1.0

    B_loc = np.zeros((n_loc, n_loc, 5))
    for s in range(n_loc):
        r, c = divmod(s, cols)
        targets = ((max(r - 1, 0), c), (min(r + 1, rows - 1), c), (r, max(c - 1, 0)),
                   (r, min(c + 1, cols - 1)), (r, c))  # fmt: skip
        for a, cell in enumerate(targets):
            B_loc[index(cell), s, a] = 1.0

    silent = [np.zeros(n_loc), np.zeros(1 + n_cue2), np.zeros(1 + n_cond)]  # no preference

    def prior(n: int, state: int | None) -> np.ndarray:
        return np.full(n, 1.0 / n) if state is None else np.eye(n)[state]

    return DiscreteModel(
        A=[np.eye(n_loc), A_cue1, A_cue2, A_reward],
        B=[B_loc, np.eye(n_cue2)[:, :, None], np.eye(n_cond)[:, :, None]],
        C=[*silent, np.array([0.0, cheese_preference, shock_preference])],
        D=[np.eye(n_loc)[index(start)], prior(n_cue2, cue2_state), prior(n_cond, reward_condition)],
        A_dependencies=[[0], [0, 1], [0, 1, 2], [0, 2]],
        B_dependencies=[[0], [1], [2]],
        reward=[*silent, np.array([0.0, 1.0, -1.0])],
        cells=_row_major(shape),
    )


class CueChainingEnv(_CategoricalEnv):
    """Cue chaining as a Gymnasium env: observations ``[location, cue 1, cue 2, reward]``.

    Reward is +1 for cheese and -1 for a shock; entering a reward location ends the episode.
    ``info["state"]`` holds ``[location, informative cue 2, reward condition]``.
    """

    def __init__(self, render_mode: str | None = None, **model_kwargs: Any):
        super().__init__(cue_chaining_model(**model_kwargs), render_mode)
        self.action_space = spaces.Discrete(5)
        self.shape = model_kwargs.get("shape", CC_SHAPE)
        self.cue1 = tuple(model_kwargs.get("cue1", CC_CUE1))
        self.cue2 = tuple(tuple(c) for c in model_kwargs.get("cue2", CC_CUE2))
        self.rewards = tuple(tuple(c) for c in model_kwargs.get("rewards", CC_REWARDS))

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._transition([int(action), 0, 0])
        obs = self._observe()
        reward = {CHEESE: 1.0, SHOCK: -1.0}.get(int(obs[3]), 0.0)
        return obs, reward, int(obs[3]) != NULL, False, {"state": self.state.copy()}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        grid = np.full((*self.shape, 3), 230, dtype=np.uint8)
        grid[self.cue1] = (230, 140, 30)
        for k, cell in enumerate(self.cue2):
            grid[cell] = (140, 60, 200) if k == self.state[1] else (200, 180, 230)
        for place, cell in enumerate(self.rewards):
            grid[cell] = (60, 200, 60) if place == self.state[2] else (220, 50, 50)
        return _draw_agent(grid, divmod(int(self.last_obs[0]), self.shape[1]))


# -- FrozenLake (Gymnasium) ---------------------------------------------------------------

FROZENLAKE_ID = "FrozenLake-v1"


def frozenlake_model(
    env: gym.Env | None = None,
    goal_preference: float = 3.0,
    hole_preference: float = -3.0,
    **make_kwargs: Any,
) -> DiscreteModel:
    """The generative model of Gymnasium's FrozenLake, read off its transition table ``P``.

    One factor, the cell (``row * cols + col``), observed exactly; ``B[s', s, a]`` sums the
    probabilities of ``P[s][a]`` landing in ``s'`` (holes and the goal are absorbing);
    ``D`` is the start cell. ``env`` is a FrozenLake env (any wrapping); without one,
    ``gym.make(FROZENLAKE_ID, **make_kwargs)`` is read (e.g. ``is_slippery=False``,
    ``map_name="8x8"``). ``C`` prefers the goal by ``goal_preference`` and holes by
    ``hole_preference``; the reward (1 at the goal) is Gymnasium's.
    """
    if env is None:
        env = gym.make(FROZENLAKE_ID, **make_kwargs)
    lake = env.unwrapped
    desc = np.asarray(lake.desc).astype(str)
    n, n_actions = int(lake.observation_space.n), int(lake.action_space.n)
    B = np.zeros((n, n, n_actions))
    for s in range(n):
        for a in range(n_actions):
            for prob, nxt, _, _ in lake.P[s][a]:
                B[nxt, s, a] += prob
    flat = desc.reshape(-1)
    goal = (flat == "G").astype(float)
    holes = (flat == "H").astype(float)
    return DiscreteModel(
        A=[np.eye(n)],
        B=[B],
        C=[goal_preference * goal + hole_preference * holes],
        D=[np.asarray(lake.initial_state_distrib, dtype=float)],
        A_dependencies=[[0]],
        B_dependencies=[[0]],
        reward=[goal],
        H=[goal],
        cells=_row_major(desc.shape),
    )


def model_of(env: gym.Env) -> DiscreteModel:
    """The generative model of a discrete task's env (any wrapping): the model the env
    samples from, or for Gymnasium's FrozenLake the one read off its transition table."""
    base = env.unwrapped
    model = getattr(base, "model", None)
    if isinstance(model, DiscreteModel):
        return model
    if (env.spec is not None and env.spec.id == FROZENLAKE_ID) or hasattr(base, "desc"):
        return frozenlake_model(env)
    raise ValueError(f"no discrete generative model for {base}: not a discrete task")
