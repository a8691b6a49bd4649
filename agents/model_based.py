"""The model-based reward planner (PlaNet / PETS style): the active-inference agent with the
``reward`` objective.

It is the same class, world model, planner and training loop as ``aif``; only the score
of imagined futures differs (predicted reward instead of a log-preference), so a
comparison of the two isolates the objective. Registered as ``mbrl``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from agents.active_inference.agent import ActiveInferenceAgent
from agents.active_inference.config import Config as _AIFConfig


@dataclasses.dataclass(frozen=True)
class Config(_AIFConfig):
    """A reward planner: the active-inference agent's settings with ``objective=reward``."""

    objective: str = "reward"
    """reward (the only objective of this agent; use aif for the others)."""

    def __post_init__(self) -> None:
        if self.objective != "reward":
            raise ValueError(
                f"invalid objective={self.objective!r}: must be reward for mbrl "
                "(the aif agent takes preference, efe and feef)"
            )
        super().__post_init__()


class ModelBasedAgent(ActiveInferenceAgent):
    """:class:`~agents.active_inference.agent.ActiveInferenceAgent` planning on reward."""

    Config: ClassVar[type] = Config
    OBJECTIVES: ClassVar[tuple[str, ...]] = ("reward",)
