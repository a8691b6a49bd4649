"""A study's report, rebuilt from its cells' run folders after every ``activegen compare``.

``report/`` holds:

- ``results.csv``: one row per cell and evaluation point (task, agent, seed, agent and env
  step, return, its std over the evaluation episodes, success rate (the goal test held at
  some step / at the episode's last step), episode length, ms per action);
- ``summary.md``: a table per task with, per agent, the final evaluation's return and success
  rate as mean [95% bootstrap interval] and interquartile mean over seeds, the env steps to
  reach the task's solved return, wall time and planning latency;
- ``learning_curves.png`` (return vs env steps, mean over seeds with a shaded 95% interval),
  ``final_performance.png`` (bars with 95% intervals) and ``videos/``: the last evaluation
  episode of each agent's median seed.

Statistics are SciPy's: the percentile bootstrap of the mean (``scipy.stats.bootstrap``) and
the interquartile mean (``scipy.stats.trim_mean`` cutting 25% at each end), as rliable
recommends for few seeds.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPORT = "report"
COLUMNS = (
    "task",
    "agent",
    "seed",
    "step",
    "env_step",
    "return",
    "return_std",
    "success",
    "final_success",
    "length",
    "act_ms",
)
# metrics.jsonl keys of an evaluation record -> results.csv columns
EVAL_KEYS = {
    "eval/return": "return",
    "eval/return_std": "return_std",
    "eval/success": "success",
    "eval/final_success": "final_success",
    "eval/length": "length",
    "eval/act_ms": "act_ms",
}
CONFIDENCE = 0.95
RESAMPLES = 10_000


def bootstrap_ci(
    values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """The percentile-bootstrap interval of the mean; a single or constant sample gives the
    point itself (there is nothing to resample)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    result = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50%."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    return float(stats.trim_mean(x, 0.25)) if x.size else math.nan


# -- reading cells --------------------------------------------------------------------------


def cell_rows(cell: Any) -> list[dict[str, Any]]:
    """The evaluation records of one cell's ``metrics.jsonl`` as results.csv rows: ``step``
    counts agent decisions, ``env_step`` the env steps they took (x the action repeat)."""
    from envs.tasks import get_task

    path = cell.directory / "metrics.jsonl"
    if not path.is_file():
        return []
    repeat = get_task(cell.task).action_repeat
    rows = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill; the resumed run rewrites it
            continue
        if "eval/return" not in record:
            continue
        step = record["step"]
        row = {"task": cell.task, "agent": cell.label, "seed": cell.seed, "step": step}
        row["env_step"] = step * repeat
        row.update({col: float(record.get(key, math.nan)) for key, col in EVAL_KEYS.items()})
        rows.append(row)
    return rows


def cell_summary(cell: Any) -> dict[str, Any] | None:
    path = cell.directory / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


# -- the report -----------------------------------------------------------------------------


def write_report(directory: Path, cells: Sequence[Any], cfg: Any) -> Path:
    """Write ``directory/report/`` from the cells' folders; return the report folder."""
    from envs.tasks import get_task

    report = directory / REPORT
    report.mkdir(parents=True, exist_ok=True)
    rows = [row for cell in cells for row in cell_rows(cell)]
    write_csv(report / "results.csv", rows)
    tasks = list(dict.fromkeys(c.task for c in cells))
    labels = list(dict.fromkeys(c.label for c in cells))
    finished = [c for c in cells if c.finished]
    tables = {
        task: agent_table(
            [c for c in finished if c.task == task],
            labels,
            rows,
            get_task(task).solved_return,
        )
        for task in tasks
    }
    videos = copy_median_videos(report, finished, tables)
    plot_learning_curves(report / "learning_curves.png", rows, tasks, labels)
    plot_final(report / "final_performance.png", tables)
    text = summary_markdown(directory, cfg, cells, tables, videos)
    (report / "summary.md").write_text(text)
    print(text)
    return report


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def agent_table(
    cells: Sequence[Any],
    labels: Sequence[str],
    rows: Sequence[dict[str, Any]],
    solved: float | None,
) -> dict[str, dict[str, Any]]:
    """Per agent label: the statistics of its finished cells in one task."""
    by_cell: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault((r["task"], r["agent"], r["seed"]), []).append(r)
    table = {}
    for label in labels:
        mine = [c for c in cells if c.label == label]
        if not mine:
            continue
        finals, successes, reached, walls, latency, seeds = [], [], [], [], [], []
        for cell in mine:
            evals = by_cell.get((cell.task, label, cell.seed), [])
            if not evals:
                continue
            last = max(evals, key=lambda r: r["step"])
            finals.append(last["return"])
            successes.append(last["success"])
            latency.append(last["act_ms"])
            seeds.append(cell.seed)
            hits = [r["env_step"] for r in evals if solved is not None and r["return"] >= solved]
            reached.append(min(hits) if hits else None)
            summary = cell_summary(cell)
            walls.append(summary["wall_seconds"] if summary else math.nan)
        if not finals:
            continue
        table[label] = {
            "seeds": seeds,
            "finals": finals,
            "return": float(np.mean(finals)),
            "return_ci": bootstrap_ci(finals),
            "return_iqm": iqm(finals),
            "success": float(np.mean(successes)),
            "success_ci": bootstrap_ci(successes),
            "reached": reached,
            "wall_seconds": float(np.nanmean(walls)),
            "act_ms": float(np.mean(latency)),
        }
    return table


def copy_median_videos(
    report: Path, cells: Sequence[Any], tables: dict[str, dict[str, dict[str, Any]]]
) -> dict[tuple[str, str], Path]:
    """``report/videos/<task>-<agent>-s<seed>.mp4``: the last evaluation video of the seed
    whose final return is the median (the lower one for an even count)."""
    out: dict[tuple[str, str], Path] = {}
    folder = report / "videos"
    for task, table in tables.items():
        for label, stats in table.items():
            order = np.argsort(stats["finals"], kind="stable")
            seed = stats["seeds"][int(order[(len(order) - 1) // 2])]
            cell = next(c for c in cells if (c.task, c.label, c.seed) == (task, label, seed))
            videos = sorted((cell.directory / "videos").glob("eval-*.mp4"))
            if not videos:
                continue
            folder.mkdir(exist_ok=True)
            target = folder / f"{task}-{label}-s{seed}.mp4"
            shutil.copyfile(videos[-1], target)
            out[(task, label)] = target
    return out


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _interval(mean: float, ci: tuple[float, float]) -> str:
    return f"{_fmt(mean)} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def steps_to_solve(reached: Sequence[int | None], solved: float | None) -> str:
    if solved is None:
        return "n/a"
    hits = [r for r in reached if r is not None]
    if not hits:
        return f"– (0/{len(reached)})"
    return f"{int(np.median(hits))} ({len(hits)}/{len(reached)})"


def summary_markdown(
    directory: Path,
    cfg: Any,
    cells: Sequence[Any],
    tables: dict[str, dict[str, dict[str, Any]]],
    videos: dict[tuple[str, str], Path],
) -> str:
    from envs.tasks import get_task

    done = sum(c.finished for c in cells)
    lines = [
        f"# Study `{directory.name}`",
        "",
        f"{done}/{len(cells)} cells finished · agents {cfg.agents} · {cfg.seeds} seed(s) "
        f"from {cfg.seed} · obs {cfg.obs} · agent steps {cfg.steps or 'task default'}",
        "",
        "Final evaluation per seed; mean [95% percentile-bootstrap interval] and IQM over "
        "seeds. *Env steps to solve*: median env steps (agent decisions x the task's action "
        "repeat) to the first evaluation at or above the task's solved return (seeds that got "
        "there / seeds; n/a: the task has none).",
    ]
    for task, table in tables.items():
        solved = get_task(task).solved_return
        lines += [
            "",
            f"## {task}" + (f" (solved at return {solved:g})" if solved is not None else ""),
            "",
            "| agent | seeds | return | IQM | success | env steps to solve | wall (s) | ms/action "
            "| video |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, s in table.items():
            video = videos.get((task, label))
            link = f"[mp4](videos/{video.name})" if video else "–"
            lines.append(
                f"| {label} | {len(s['seeds'])} | {_interval(s['return'], s['return_ci'])} "
                f"| {_fmt(s['return_iqm'])} | {_interval(s['success'], s['success_ci'])} "
                f"| {steps_to_solve(s['reached'], solved)} | {_fmt(s['wall_seconds'])} "
                f"| {_fmt(s['act_ms'])} | {link} |"
            )
    unfinished = [c.name for c in cells if not c.finished]
    if unfinished:
        lines += ["", "Not finished (run the same command again): " + ", ".join(unfinished)]
    lines += [
        "",
        "![learning curves](learning_curves.png)",
        "",
        "![final performance](final_performance.png)",
        "",
    ]
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(
    path: Path, rows: Sequence[dict[str, Any]], tasks: Sequence[str], labels: Sequence[str]
) -> None:
    """One panel per task: evaluation return against env steps, one line per agent (the
    k-th evaluation of every seed averaged; steps differ slightly as chunks end with
    episodes), shaded by the 95% bootstrap interval over seeds."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for label in labels:
            curves: dict[int, list[dict[str, Any]]] = {}
            for r in rows:
                if r["task"] == task and r["agent"] == label:
                    curves.setdefault(r["seed"], []).append(r)
            if not curves:
                continue
            length = min(len(c) for c in curves.values())
            ordered = [sorted(c, key=lambda r: r["step"])[:length] for c in curves.values()]
            steps = [np.mean([c[k]["env_step"] for c in ordered]) for k in range(length)]
            values = [[c[k]["return"] for c in ordered] for k in range(length)]
            mean = [float(np.mean(v)) for v in values]
            low, high = zip(*(bootstrap_ci(v) for v in values), strict=True)
            (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=label)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title(task)
        ax.set_xlabel("env steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:  # every cell of the task failed
            ax.text(0.5, 0.5, "no finished cell", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_final(path: Path, tables: dict[str, dict[str, dict[str, Any]]]) -> None:
    """One panel per task: final return per agent, mean with 95% interval, seeds as dots."""
    plt = _pyplot()
    tasks = list(tables)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        table = tables[task]
        for k, s in enumerate(table.values()):
            low, high = s["return_ci"]
            error = [[s["return"] - low], [high - s["return"]]]
            ax.bar(k, s["return"], yerr=error, capsize=4, alpha=0.7)
            ax.scatter([k] * len(s["finals"]), s["finals"], color="black", s=10, zorder=3)
        ax.set_xticks(range(len(table)), list(table), rotation=20)
        ax.set_title(task)
        ax.set_ylabel("final evaluation return")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
