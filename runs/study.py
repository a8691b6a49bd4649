"""Studies: every (task, agent, seed) cell of a comparison is an ordinary ``train-agent`` run.

``activegen compare --envs inverted-pendulum,reacher --agents aif:efe,aif:preference,sac
--seeds 5 --steps 20000`` lays out one folder::

    <out>/study/<name>/
      config.yaml                     what the study is (a changed definition is refused)
      cells/<task>/<agent>/s<seed>/   one train-agent run folder per cell
      report/                         results.csv, summary.md, plots, videos (runs.study_report)

Running the same command again skips finished cells (``summary.json`` present), continues
unfinished ones from their last checkpoint (``train-agent --resume``), and rewrites the
report. Cells run in this process (``--workers 1``), in ``--workers N`` spawned processes
with ``--threads`` torch threads each, or as Ray tasks (``--backend ray``); all three call
:func:`run_cell`, so the result does not depend on how cells were scheduled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import agents
import envs
from agents.base import OBJECTIVES, OBS
from runs import config as config_lib
from runs.config import RunOptions, check, check_choice
from runs.errors import ConfigError, UserError
from runs.process import keep_freed_memory
from runs.registry import check_name

KIND = "study"
BACKENDS = ("local", "ray")
# Fields that say how to execute a study, not what it is: they may change between runs.
EXECUTION_FIELDS = (
    "workers",
    "backend",
    "address",
    "gpus",
    "threads",
    "quiet",
    "device",
    "out",
    "name",
)


@dataclasses.dataclass(frozen=True)
class CompareConfig(RunOptions):
    """Train every agent in every task with every seed; write a report comparing them."""

    envs: str = "inverted-pendulum"
    """Comma-separated registered tasks, e.g. inverted-pendulum,reacher,mountaincar."""
    agents: str = "aif:preference,aif:reward,sac"
    """Comma-separated agents as AGENT[:OBJECTIVE[:PLANNER]], e.g. aif:efe,aif:reward:mppi,sac
    (objective default: reward; planner default: cem)."""
    seeds: int = 3
    """Seeds per (task, agent): --seed, --seed + 1, ..."""
    steps: int | None = None
    """Training steps (agent decisions) per cell (default: each task's benchmark budget)."""
    eval_every: int | None = None
    """Agent steps between evaluations (default steps/10)."""
    eval_episodes: int | None = None
    """Deterministic evaluation episodes per evaluation (default 10)."""
    obs: str = "state"
    """state | pixels, for every cell."""
    preset: str = "default"
    """default | smoke (each agent's SMOKE sizes)."""
    set: tuple[str, ...] = ()
    """Agent hyper-parameter overrides as AGENT.key=value, applied to that agent's cells,
    e.g. aif.candidates=200 sac.learning_rate=1e-3."""
    name: str = "study"
    """Study folder name under <out>/study/; the same name continues the same study."""
    workers: int = 1
    """Cells run at once (local: spawned processes; 1: in this process)."""
    backend: str = "local"
    """local | ray (cells as Ray tasks; needs the [cluster] extra)."""
    address: str | None = None
    """Ray cluster address (e.g. ray://head:10001 or auto); unset: a local Ray instance."""
    gpus: float = 0.0
    """Ray: GPUs per cell (a fraction shares a GPU between cells). Ray hides GPUs from tasks
    that ask for none, so --device cuda with --backend ray needs gpus > 0."""
    video: bool = True
    """Film the first episode of every evaluation; the report shows each agent's median seed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.seeds >= 1, "seeds", self.seeds, ">= 1")
        check(self.workers >= 1, "workers", self.workers, ">= 1")
        check_choice("backend", self.backend, BACKENDS)
        check_choice("obs", self.obs, OBS)
        check(self.name != "" and "/" not in self.name, "name", self.name, "a folder name")
        check(
            self.address is None or self.backend == "ray",
            "address",
            self.address,
            "unset unless --backend ray",
        )
        check(self.gpus >= 0, "gpus", self.gpus, ">= 0")
        check(
            self.backend != "ray" or self.device != "cuda" or self.gpus > 0,
            "gpus",
            self.gpus,
            "> 0 for --device cuda with --backend ray (e.g. 1, or 0.5 to share a GPU)",
        )
        for name in ("steps", "eval_every", "eval_episodes"):
            value = getattr(self, name)
            check(value is None or value > 0, name, value, "> 0")
        for task in self.task_names:
            check_name("task", task, envs.TASKS)
        specs = self.agent_specs
        check(len(set(specs)) == len(specs), "agents", self.agents, "without repeats")
        names = {s.agent for s in specs}
        for item in self.set:
            key = item.partition("=")[0]
            agent, dot, _ = key.partition(".")
            check(dot == "." and item.count("=") >= 1, "set", item, "AGENT.key=value")
            check(agent in names, "set", item, "AGENT.key=value for " + ", ".join(sorted(names)))

    @property
    def task_names(self) -> list[str]:
        return _split(self.envs, "envs")

    @property
    def agent_specs(self) -> list[AgentSpec]:
        return [AgentSpec.parse(text) for text in _split(self.agents, "agents")]

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))


def _split(text: str, field: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    check(all(items), field, text, "a comma-separated list without empty items")
    return items


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """One agent column of a study: ``AGENT[:OBJECTIVE[:PLANNER]]``."""

    text: str
    agent: str
    objective: str = "reward"
    planner: str = "cem"

    @classmethod
    def parse(cls, text: str) -> AgentSpec:
        parts = text.split(":")
        check(1 <= len(parts) <= 3, "agents", text, "AGENT[:OBJECTIVE[:PLANNER]]")
        check_name("agent", parts[0], agents.AGENTS)
        spec = cls(text, *parts)
        check_choice("objective", spec.objective, OBJECTIVES)
        return spec

    @property
    def label(self) -> str:
        """``aif-efe``, ``aif-reward-mppi``, ``sac``: the spec as written, for folders and
        the report."""
        return self.text.replace(":", "-")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (task, agent, seed) run of a study: its train-agent config and its folder."""

    task: str
    label: str
    seed: int
    directory: Path
    config: Any  # runs.train_agent.TrainAgentConfig

    @property
    def finished(self) -> bool:
        return (self.directory / "summary.json").is_file()

    @property
    def name(self) -> str:
        return f"{self.task}/{self.label}/s{self.seed}"


def study_dir(cfg: CompareConfig) -> Path:
    return Path(cfg.resume) if cfg.resume is not None else Path(cfg.out) / KIND / cfg.name


def make_cells(cfg: CompareConfig, directory: Path) -> list[Cell]:
    """Every cell, seed-major (a partial study holds every agent at its first seeds), each
    config checked as train-agent would check it, so a bad cell stops before any work."""
    from runs.train_agent import TrainAgentConfig, agent_config

    overrides: dict[str, list[str]] = {}
    for item in cfg.set:
        agent, _, rest = item.partition(".")
        overrides.setdefault(agent, []).append(rest)
    cells = []
    for seed in cfg.seed_list:
        for task in cfg.task_names:
            for spec in cfg.agent_specs:
                train_cfg = TrainAgentConfig(
                    seed=seed,
                    device=cfg.device,
                    out=directory / "cells",
                    threads=cfg.threads,
                    quiet=True,  # the study's own bar and one line per finished cell
                    agent=spec.agent,
                    env=task,
                    objective=spec.objective,
                    obs=cfg.obs,
                    planner=spec.planner,
                    steps=cfg.steps,
                    eval_every=cfg.eval_every,
                    eval_episodes=cfg.eval_episodes,
                    preset=cfg.preset,
                    set=tuple(overrides.get(spec.agent, ())),
                    video=cfg.video,
                )
                agent_config(train_cfg)  # unsupported objective, obs or --set: refused now
                path = directory / "cells" / task / spec.label / f"s{seed}"
                cells.append(Cell(task, spec.label, seed, path, train_cfg))
    return cells


def run_cell(cell: Cell) -> None:
    """Run or continue one unfinished cell. A folder with ``config.yaml`` was interrupted: it
    continues from its last checkpoint exactly as ``train-agent --resume`` does (train-agent
    sets the cell's torch threads)."""
    from runs.train_agent import train_agent

    if (cell.directory / "config.yaml").is_file():
        train_agent(config_lib.replace(cell.config, resume=cell.directory))
        return
    if cell.directory.exists():  # died while its folder was being made
        shutil.rmtree(cell.directory)
    train_agent(cell.config, run_dir=cell.directory)


# -- execution ------------------------------------------------------------------------------


Outcome = tuple[Cell, str | None]  # (cell, error message or None)


def run_in_process(cells: Sequence[Cell], bar: tqdm) -> Iterable[Outcome]:
    for cell in cells:
        bar.set_postfix_str(cell.name)
        yield cell, _attempt(cell)


def _attempt(cell: Cell) -> str | None:
    """Run a cell; a user error or a failed training becomes its message, and any other
    exception its type, message and a traceback file in the cell's folder. The other cells
    go on, and the failure is reported as soon as the cell stops, not after the study."""
    from runs.loop import TrainingError

    try:
        run_cell(cell)
    except (UserError, TrainingError) as e:
        return str(e)
    except Exception as e:  # a bug: keep its traceback, but do not lose the other cells
        cell.directory.mkdir(parents=True, exist_ok=True)
        trace = cell.directory / "error.txt"
        trace.write_text(traceback.format_exc())
        first = str(e).splitlines()[0] if str(e) else ""
        return f"crashed with {type(e).__name__}: {first} (traceback: {trace})"
    return None


def _exit_with(parent: int) -> None:
    """Pool initializer: end this worker once the study process ``parent`` is gone (a killed
    study otherwise leaves its workers training, writing into the cell folders that the
    same command, run again, resumes), and set its malloc as the command's."""
    import threading
    import time

    keep_freed_memory()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-study").start()


def run_in_processes(cells: Sequence[Cell], workers: int) -> Iterable[Outcome]:
    """Cells in ``workers`` spawned processes (fork is unsafe with MuJoCo's GL and JAX)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)
    ) as pool:
        futures = {pool.submit(_attempt, cell): cell for cell in cells}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except BrokenProcessPool:
                yield futures[future], "its worker process died (killed?); run again to resume"


def run_on_ray(
    cells: Sequence[Cell], address: str | None, threads: int, gpus: float
) -> Iterable[Outcome]:
    """Cells as Ray tasks of ``threads`` CPUs and ``gpus`` GPUs each; the study folder must
    be on a file system every Ray node sees, and activegen installed on every node."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--backend ray needs Ray: pip install -e '.[cluster]' (or pip install ray)"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=threads, num_gpus=gpus)(_attempt)
        pending = {task.remote(cell): cell for cell in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            try:
                yield cell, ray.get(done[0])
            except ray.exceptions.RayError as e:
                yield cell, f"the Ray task failed: {str(e).splitlines()[0]}"
    finally:
        if started:
            ray.shutdown()


# -- the command ----------------------------------------------------------------------------


def open_study(cfg: CompareConfig) -> Path:
    """The study folder with ``config.yaml``; a different definition there is refused."""
    directory = study_dir(cfg)
    saved_path = directory / "config.yaml"
    if saved_path.is_file():
        saved = config_lib.load_yaml(CompareConfig, saved_path)
        changed = [
            f"{f.name}={getattr(saved, f.name)!r} (now {getattr(cfg, f.name)!r})"
            for f in dataclasses.fields(CompareConfig)
            if f.name not in EXECUTION_FIELDS + config_lib.LAUNCH_FIELDS
            and getattr(saved, f.name) != getattr(cfg, f.name)
        ]
        if changed:
            raise ConfigError(
                f"study {directory} was made with {', '.join(changed)}; run it with its own "
                f"settings (activegen compare --resume {directory}) or choose another --name"
            )
    else:
        directory.mkdir(parents=True, exist_ok=True)
        config_lib.save_yaml(cfg, saved_path)
    return directory


def compare(cfg: CompareConfig) -> Path:
    """Run every unfinished cell of the study, then write its report; return the report folder."""
    from runs.study_report import write_report

    directory = study_dir(cfg)
    cells = make_cells(cfg, directory)  # every config error before the folder is touched
    directory = open_study(cfg)
    todo = [c for c in cells if not c.finished]
    cores = os.cpu_count() or 1
    if cfg.backend == "local" and cfg.workers * cfg.threads > cores:
        print(
            f"note: {cfg.workers} workers x {cfg.threads} threads on {cores} cores: they will "
            "contend (slower, not faster)"
        )
    print(
        f"study {directory}: {len(cells)} cells, {len(cells) - len(todo)} finished, "
        f"{len(todo)} to run ({cfg.backend}, {cfg.workers} worker(s))"
    )
    failures = []
    with tqdm(total=len(todo), disable=cfg.quiet, desc="cells", unit="cell") as bar:
        for cell, error in _schedule(cfg, todo, bar):
            bar.update(1)
            if error is not None:
                failures.append(f"{cell.name}: {error}")
                tqdm.write(f"cell {cell.name} failed: {error}", file=sys.stderr)
            else:
                tqdm.write(_cell_line(cell))
    report = write_report(directory, cells, cfg)
    print(f"report: {report}  (summary.md, results.csv, *.png, videos/)")
    if failures:
        raise UserError(
            f"{len(failures)} cell(s) did not finish; the same command resumes them:\n  "
            + "\n  ".join(failures)
        )
    return report


def _cell_line(cell: Cell) -> str:
    summary = json.loads((cell.directory / "summary.json").read_text())
    metrics = summary["metrics"]
    return (
        f"{cell.name}: eval return {metrics['eval/return']:.4g}, success "
        f"{metrics['eval/success']:.2g} after {summary['steps']} steps "
        f"({summary['wall_seconds']:.0f} s)"
    )


def _schedule(cfg: CompareConfig, cells: Sequence[Cell], bar: tqdm) -> Iterable[Outcome]:
    if not cells:  # nothing to run: no pool, no Ray instance
        return ()
    if cfg.backend == "ray":
        return run_on_ray(cells, cfg.address, cfg.threads, cfg.gpus)
    if cfg.workers > 1:
        return run_in_processes(cells, cfg.workers)
    return run_in_process(cells, bar)
