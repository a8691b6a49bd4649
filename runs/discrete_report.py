"""Pictures of discrete active inference: belief heat-map animations and EFE bar charts.

A discrete agent (``agents.discrete.PymdpAgent``) returns a
:class:`~agents.discrete.DiscreteStep` as the state of every ``act`` call: its beliefs, the
negative expected free energy of every policy with its parts, and the action. This module
turns an episode of them into

- ``videos/beliefs-<tag>.mp4`` and ``.gif``: per step, the location belief as a heat-map
  over the task's grid (the agent's true cell outlined), the other factors' beliefs, and
  the best policies' ``neg_efe`` split into pragmatic and epistemic bars;
- ``plots/efe-<tag>.png``: those EFE bars for every step of the episode;
- ``plots/trace-<tag>.npz``: the arrays themselves (beliefs, ``q_pi``, ``neg_efe`` and its
  parts per policy, the policies, observations and actions per step),

also sent to TensorBoard. ``train-agent`` writes them after training for evaluation
episodes; ``activegen record --run RUN_DIR`` for the episodes it records. Drawing uses
matplotlib's object API on the Agg canvas (no pyplot, no global backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.discrete import DiscreteStep
from envs.discrete import DiscreteModel
from runs.run import Run

TOP_POLICIES = 8
"""Policies drawn in the EFE bars (the best by neg_efe, the chosen one always)."""
PARTS = (("pragmatic", "#3b75af"), ("epistemic", "#ef8636"), ("novelty", "#519e3e"),
         ("inductive", "#8d69b8"))  # fmt: skip


def is_trace(steps: Sequence[Any]) -> bool:
    """Whether ``steps`` (an episode of ``act`` states) can be drawn here."""
    return len(steps) > 0 and all(isinstance(s, DiscreteStep) for s in steps)


def trace_arrays(steps: Sequence[DiscreteStep], policies: np.ndarray, obs: np.ndarray) -> dict:
    """The episode as arrays: ``qs_f<f>`` ``(T, num_states[f])``; ``q_pi``, ``neg_efe`` and
    each part ``(T, P)``; ``policy``, ``action`` ``(T,)``; ``policies`` ``(P, depth, F)``;
    ``obs`` ``(T, num_modalities)`` (the observation each decision was made on)."""
    arrays: dict[str, np.ndarray] = {
        f"qs_f{f}": np.stack([s.qs[f] for s in steps]) for f in range(len(steps[0].qs))
    }
    for name in ("q_pi", "neg_efe", "pragmatic", "epistemic", "novelty", "inductive"):
        arrays[name] = np.stack([getattr(s, name) for s in steps])
    arrays["policy"] = np.array([s.policy for s in steps])
    arrays["action"] = np.array([s.action for s in steps])
    arrays["policies"] = np.asarray(policies)
    arrays["obs"] = np.asarray(obs)
    return arrays


def _location_grid(model: DiscreteModel, q: np.ndarray) -> np.ndarray:
    """``q`` over factor-0 states placed on the task's drawing grid (NaN: no state)."""
    cells = model.cells or tuple((0, s) for s in range(len(q)))
    rows = 1 + max(r for r, _ in cells)
    cols = 1 + max(c for _, c in cells)
    grid = np.full((rows, cols), np.nan)
    for s, (r, c) in enumerate(cells):
        grid[r, c] = q[s]
    return grid


def _observed_location(model: DiscreteModel, obs: np.ndarray) -> int | None:
    """The true location when modality 0 observes factor 0 exactly (every task here)."""
    a = model.A[0]
    if a.ndim == 2 and a.shape[0] == a.shape[1] and np.allclose(a, np.eye(len(a))):
        return int(obs[0])
    return None


def _policy_label(policy: np.ndarray, factor: int) -> str:
    return "-".join(str(int(u)) for u in policy[:, factor])


def _draw_efe(ax: Any, step: DiscreteStep, policies: np.ndarray, factor: int) -> None:
    order = [int(k) for k in np.argsort(-step.neg_efe, kind="stable")[:TOP_POLICIES]]
    if step.policy not in order:
        order[-1] = step.policy
    x = np.arange(len(order))
    for sign in (1, -1):  # positive parts stacked up from 0, negative ones down
        base = np.zeros(len(order))
        for name, colour in PARTS:
            values = getattr(step, name)[order]
            part = np.where(sign * values > 0, values, 0.0)
            if np.any(part != 0):
                ax.bar(x, part, bottom=base, color=colour, label=name if sign == 1 else None)
            base += part
    ax.plot(x, step.neg_efe[order], "k_", markersize=14, label="neg_efe")
    chosen = order.index(step.policy)
    ax.set_xticks(x, [_policy_label(policies[k], factor) for k in order], rotation=60, fontsize=6)
    ax.get_xticklabels()[chosen].set_fontweight("bold")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.tick_params(axis="y", labelsize=6)


def _canvas(width: float, height: float, dpi: int = 80) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    return figure, FigureCanvasAgg(figure)


def _pixels(figure: Any, canvas: Any) -> np.ndarray:
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    h, w = image.shape[:2]
    return image[: h - h % 2, : w - w % 2]  # mp4 needs even sizes


def belief_frame(
    model: DiscreteModel, step: DiscreteStep, policies: np.ndarray, obs: np.ndarray, t: int
) -> np.ndarray:
    """One animation frame ``(H, W, 3)`` uint8: location heat-map, other beliefs, EFE bars."""
    factor = int(np.argmax(model.num_controls))
    others = len(step.qs) - 1
    figure, canvas = _canvas(9.6, 3.2)
    axes = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 0.8, 1.6]})
    grid = _location_grid(model, step.qs[0])
    axes[0].imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0)
    location = _observed_location(model, obs)
    if location is not None and model.cells:
        r, c = model.cells[location]
        axes[0].add_patch(_square(c, r))
    axes[0].set_title(f"t={t}  q(location)  action {step.action}", fontsize=8)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    if others:
        labels, x = [], 0
        for f in range(1, len(step.qs)):
            q = step.qs[f]
            axes[1].bar(np.arange(x, x + len(q)), q, color=f"C{f}")
            labels += [f"f{f}:{s}" for s in range(len(q))]
            x += len(q)
        axes[1].set_xticks(np.arange(x), labels, rotation=60)
        axes[1].set_ylim(0, 1)
        axes[1].set_title("q(other factors)", fontsize=8)
    else:
        axes[1].bar(np.arange(len(step.q_pi)), step.q_pi, color="#555555")
        axes[1].set_title("q(policies)", fontsize=8)
    axes[1].tick_params(labelsize=6)
    _draw_efe(axes[2], step, policies, factor)
    axes[2].set_title("neg EFE of the best policies (chosen: bold)", fontsize=8)
    axes[2].legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    return _pixels(figure, canvas)


def _square(col: int, row: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5)


def efe_chart(steps: Sequence[DiscreteStep], policies: np.ndarray, factor: int = 0) -> np.ndarray:
    """All steps' EFE bars (best policies, parts stacked) as one image ``(H, W, 3)``."""
    n = len(steps)
    cols = min(n, 4)
    rows = -(-n // cols)
    figure, canvas = _canvas(3.2 * cols, 2.6 * rows)
    axes = np.atleast_1d(figure.subplots(rows, cols, squeeze=False)).reshape(-1)
    for t, (ax, step) in enumerate(zip(axes, steps, strict=False)):
        _draw_efe(ax, step, policies, factor)
        ax.set_title(f"t={t}: action {step.action}", fontsize=8)
    for ax in axes[n:]:
        ax.axis("off")
    axes[0].legend(fontsize=6)
    figure.tight_layout()
    return _pixels(figure, canvas)


def write_episode_report(
    run: Run,
    model: DiscreteModel,
    steps: Sequence[DiscreteStep],
    policies: np.ndarray,
    obs: Sequence[np.ndarray],
    tag: str,
    step: int = 0,
    fps: int = 2,
) -> list[Path]:
    """Animation, EFE chart and trace arrays of one episode into ``run`` (see the module
    docstring). ``obs[t]`` is the observation decision ``t`` was made on."""
    import warnings

    import imageio.v3 as iio

    from envs.rendering import quiet_headless_pygame
    from runs.video import write_gif, write_mp4

    obs_array = np.stack([np.asarray(o).reshape(-1) for o in obs])
    frames = np.stack(
        [
            belief_frame(model, s, policies, o, t)
            for t, (s, o) in enumerate(zip(steps, obs_array, strict=True))
        ]
    )
    videos, plots = run.dir / "videos", run.dir / "plots"
    videos.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    stem = videos / f"beliefs-{tag}"
    with warnings.catch_warnings():
        # ffmpeg is a fork-exec'd subprocess: JAX's warning about forking does not apply.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        paths = [
            write_mp4(frames, stem.with_suffix(".mp4"), fps),
            write_gif(frames, stem.with_suffix(".gif"), fps),
        ]
    chart = efe_chart(steps, policies, int(np.argmax(model.num_controls)))
    paths.append(plots / f"efe-{tag}.png")
    iio.imwrite(paths[-1], chart)
    paths.append(plots / f"trace-{tag}.npz")
    np.savez_compressed(paths[-1], **trace_arrays(steps, policies, obs_array))
    quiet_headless_pygame()  # TensorBoard's video encoder imports moviepy, which imports pygame
    run.log_video("beliefs/animation", frames, step, fps=fps)
    run.writer.add_image("efe/bars", chart, step, dataformats="HWC")
    return paths


def write_agent_report(
    run: Run, agent: Any, env: Any, seeds: Sequence[int], step: int, fps: int = 2
) -> list[Path]:
    """Roll ``agent`` (deterministic policy) out in ``env`` once per seed and write each
    episode's report, tagged ``<step>-<k>``. Agents whose states are not
    :class:`~agents.discrete.DiscreteStep` get none (returns ``[]``)."""
    from envs.discrete import model_of

    if not getattr(agent, "TRACES", False):
        return []
    model = model_of(env)
    paths: list[Path] = []
    for k, seed in enumerate(seeds):
        obs, _ = env.reset(seed=int(seed))
        state, steps, seen = None, [], []
        while True:
            seen.append(obs)
            action, state = agent.act(obs, state, explore=False)
            steps.append(state)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        paths += write_episode_report(
            run, model, steps, agent.policies, seen, f"{step:07d}-{k}", step, fps
        )
    return paths
