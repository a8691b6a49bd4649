"""A stub training command for testing the run machinery (the DreamerV3-style loop test).

It fits a linear model to noisy data with batches drawn from the global torch RNG, so an
interrupted and resumed run must reproduce an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses

import torch

from runs.config import RunOptions, check_positive
from runs.loop import train_loop
from runs.run import Run, seed_everything


class SimulatedKill(Exception):
    """Raised by the stub at ``crash_at`` to stand in for a killed process."""


@dataclasses.dataclass(frozen=True)
class ToyConfig(RunOptions):
    steps: int = 20
    """Optimisation steps."""
    lr: float = 0.05
    """Learning rate."""
    checkpoint_every: int = 5
    """Steps between checkpoints."""
    crash_at: int = 0
    """Raise at this step (0: never)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, "steps", "lr", "checkpoint_every")


def toy_train(cfg: ToyConfig) -> None:
    seed_everything(cfg.seed)
    run = Run.open(cfg, "test", "toy")
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    true_w = torch.tensor([[1.0, -2.0, 0.5]])

    def step(i: int) -> dict[str, float]:
        if i == cfg.crash_at:
            raise SimulatedKill(i)
        x = torch.randn(16, 3)
        y = x @ true_w.T + 0.1 * torch.randn(16, 1)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"losses/mse": loss.item()}

    last = train_loop(
        run,
        {"model": model, "opt": opt},
        step,
        cfg.steps,
        log_every=1,
        checkpoint_every=cfg.checkpoint_every,
        quiet=True,
    )
    run.finish(last, cfg.steps)
