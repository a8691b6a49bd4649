"""``activegen demo``: what ``make demo`` runs; records a random policy on ``reacher``.

A stand-in until the comparison-study demo (training an agent takes minutes): a MuJoCo
task rendered headless and saved as videos through the same ``record`` command that films
trained agents (``activegen record --run RUN_DIR``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runs.config import RunOptions, check_positive
from runs.record import RecordConfig, record


@dataclasses.dataclass(frozen=True)
class DemoConfig(RunOptions):
    """Record a random policy on reacher and print where the videos are."""

    episodes: int = 2
    """Episodes to record."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "episodes")


def demo(cfg: DemoConfig) -> list[Path]:
    print(
        "activegen demo: a random policy in MuJoCo's Reacher-v5, rendered offscreen and saved\n"
        "as mp4 and GIF videos. Trained agents are recorded the same way with\n"
        "`activegen record --run RUN_DIR`; `activegen list` shows every task.\n"
    )
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(RunOptions)}
    paths = record(RecordConfig(**options, env="reacher", policy="random", episodes=cfg.episodes))
    print(f"\nvideos: {paths[0].parent}  (TensorBoard: tensorboard --logdir {cfg.out})")
    return paths
