"""Policies to roll out: anything with ``act(obs, state) -> (action, state)``.

``POLICIES`` names policies that need no training (``random``). ``RUN_POLICY_LOADERS`` is
the hook through which trained agents become policies: it maps the kind of a run folder
(``<out>/<kind>/<name>/<stamp>/``) to ``"module:loader"``, a function
``loader(run_dir, env) -> Policy``; agents register theirs as they arrive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym

from runs.errors import UserError
from runs.registry import check_name, import_string
from runs.run import require_run_dir

POLICIES: dict[str, tuple[str, str]] = {
    "random": ("runs.policies:RandomPolicy", "uniformly random actions from the action space"),
}

# run kind -> ("module:loader", description); loader(run_dir, env) -> Policy.
RUN_POLICY_LOADERS: dict[str, tuple[str, str]] = {
    "agent": ("runs.train_agent:load_agent_policy", "agents trained with activegen train-agent"),
}


class Policy(Protocol):
    def act(self, obs: Any, state: Any = None) -> tuple[Any, Any]:
        """The action for ``obs`` and the policy's next recurrent ``state``."""
        ...


class RandomPolicy:
    """Samples the action space (seeded with ``seed``); keeps no state."""

    def __init__(self, env: gym.Env, seed: int = 0):
        self.action_space = env.action_space
        self.action_space.seed(seed)

    def act(self, obs: Any, state: Any = None) -> tuple[Any, Any]:
        return self.action_space.sample(), state


def make_policy(name: str, env: gym.Env, seed: int = 0) -> Policy:
    """The policy registered as ``name`` in :data:`POLICIES`, acting in ``env``."""
    target, _ = POLICIES[check_name("policy", name, POLICIES)]
    return import_string(target)(env, seed)


def load_run_policy(run_dir: Path, env: gym.Env) -> Policy:
    """The trained policy of run folder ``run_dir``, through :data:`RUN_POLICY_LOADERS`."""
    run_dir = require_run_dir(run_dir)
    kind = run_dir.resolve().parent.parent.name
    if kind not in RUN_POLICY_LOADERS:
        kinds = ", ".join(sorted(RUN_POLICY_LOADERS)) or "none yet"
        raise UserError(
            f"no agent to load in {run_dir}: it is a {kind!r} run, and no policy loader is "
            f"registered for that kind (kinds with a loader: {kinds})"
        )
    target, _ = RUN_POLICY_LOADERS[kind]
    return import_string(target)(run_dir, env)
