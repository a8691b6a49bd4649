"""The one training loop: steps, logging, periodic checkpoints, resume and a NaN guard.

Every trainer (generative models, world models, agents) supplies a ``step_fn(step) ->
metrics`` and the modules whose ``state_dict`` makes up its checkpoint; the loop does the
rest identically for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tqdm.auto import tqdm

from generative.base import TrainingError, check_finite
from runs.checkpoint import load_into, set_rng_state
from runs.run import Run


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def restore(run: Run, modules: Mapping[str, Stateful]) -> int:
    """Load ``modules`` and the RNG states from the run's resume state; return its step."""
    state = run.resume_state
    if state is None:
        return 0
    missing = sorted(set(modules) - set(state))
    if missing:
        raise TrainingError(f"checkpoint in {run.dir} lacks {', '.join(missing)}")
    for key, module in modules.items():
        load_into(module, state[key], f"the checkpoint in {run.dir}")
    set_rng_state(state["rng"])
    return int(state["step"])


def train_loop(
    run: Run,
    modules: Mapping[str, Stateful],
    step_fn: Callable[[int], Mapping[str, Any]],
    steps: int,
    *,
    log_every: int = 50,
    checkpoint_every: int = 500,
    eval_fn: Callable[[int], Mapping[str, Any]] | None = None,
    eval_every: int = 0,
    quiet: bool = False,
    desc: str = "train",
) -> dict[str, float]:
    """Call ``step_fn(step)`` for steps ``start+1 .. steps`` and return the last metrics.

    ``start`` is 0 for a new run and the checkpoint's step for a resumed one. Metrics are
    logged every ``log_every`` steps and on the last step, ``eval_fn`` every ``eval_every``
    steps, and a checkpoint of ``modules`` is written every ``checkpoint_every`` steps and
    at the end.
    """
    start = restore(run, modules)
    last: dict[str, float] = {}
    bar = tqdm(range(start + 1, steps + 1), initial=start, total=steps, disable=quiet, desc=desc)
    for step in bar:
        metrics = step_fn(step)
        check_finite(metrics, step)
        if step % log_every == 0 or step == steps:
            last = {k: float(v) for k, v in metrics.items()}
            run.log(last, step)
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(last.items())[:3]})
        if eval_fn is not None and eval_every and (step % eval_every == 0 or step == steps):
            evaluation = dict(eval_fn(step))
            run.log(evaluation, step)
            last.update({k: float(v) for k, v in evaluation.items()})
        if step % checkpoint_every == 0 or step == steps:
            run.save_checkpoint({k: m.state_dict() for k, m in modules.items()}, step)
    bar.close()
    return last
