"""Train an agent in a task with periodic deterministic evaluations; resume exactly.

``activegen train-agent --agent aif|sac|td3|ppo --env TASK --objective ... --obs ...
--planner ... --steps N`` builds a training env and a separate evaluation env (another
seed) and runs in ``<out>/agent/<name>/<stamp>/`` the chunked protocol:

1. ``agent.train_until(env, target)`` for the next multiple of ``eval_every`` (or
   ``steps``); the chunk ends at the first episode end at or after the target, and the
   training env truncates the episode that reaches ``steps`` (``envs.wrappers.StepBudget``),
   so that a run never spends more than its budget;
2. evaluation: ``eval_episodes`` episodes with fixed seeds and ``act(explore=False)``,
   logged as ``eval/return``, ``eval/success``, ``eval/length`` and ``eval/act_ms`` at the
   agent's env step (the first episode filmed into ``videos/`` with ``--video``);
3. a checkpoint of the agent's state and the RNG states.

A killed run continued with ``--resume RUN_DIR`` repeats the same metrics as an
uninterrupted one (wall-time metrics aside). Agent settings: the agent's ``Config``
defaults, its per-task ``tuned`` values, the ``smoke`` preset's ``SMOKE``, then ``--set``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

import agents
import envs
from agents.base import OBJECTIVES, OBS, PLANNERS, episode_success
from runs import config as config_lib
from runs.checkpoint import load_into
from runs.config import RunOptions, check, check_choice
from runs.errors import ConfigError, UserError
from runs.loop import check_finite, restore
from runs.registry import check_name, resolve
from runs.run import Run, seed_everything, select_device

KIND = "agent"
PRESETS = ("default", "smoke")
# Budgets of the benchmark tasks in env steps (the protocol). A run's --steps count
# agent decisions, each one action repeated `action_repeat` times in the env, so a task's
# default --steps is its budget divided by that; other tasks: DEFAULT_STEPS.
ENV_STEP_BUDGETS = {
    "inverted-pendulum": 3000,
    "pendulum": 10000,
    "reacher": 20000,
    "mountaincar": 20000,
    "tmaze": 2000,
    "gridworld": 3000,
    "cue-chaining": 5000,
    "frozenlake": 20000,
}
DEFAULT_STEPS = 50000


def task_steps(task: str) -> int:
    """A task's default ``--steps``: its env-step budget in agent decisions."""
    if task not in ENV_STEP_BUDGETS:
        return DEFAULT_STEPS
    from envs.tasks import get_task

    return ENV_STEP_BUDGETS[task] // get_task(task).action_repeat


EVALUATIONS = 10  # default eval_every = steps / EVALUATIONS
DEFAULT_EVAL_EPISODES = 10
SMOKE = {"steps": 400, "eval_every": 200, "eval_episodes": 2}
# Seed offset of the evaluation env: its episodes never repeat a training episode.
EVAL_SEED_OFFSET = 1_000_003
VIDEO_SIZE = 128
REPORT_EPISODES = 2  # evaluation episodes drawn for agents with TRACES (belief animations)
VIDEO_FPS = 30


@dataclasses.dataclass(frozen=True)
class TrainAgentConfig(RunOptions):
    """Train an agent in a task, evaluating it every eval_every env steps."""

    agent: str = "sac"
    """Registered agent (activegen list): aif, sac, td3, ppo, ..."""
    env: str = "pendulum"
    """Registered task to train and evaluate in."""
    objective: str = "reward"
    """reward | preference | efe | feef (only active-inference agents take other than reward)."""
    obs: str = "state"
    """What the agent observes: state (vectors) | pixels (64x64 frames)."""
    planner: str = "cem"
    """cem | mppi | policy (model-based agents only; ignored by the others)."""
    steps: int | None = None
    """Training steps in agent decisions (each repeats its action the task's action_repeat
    times in the env); default: the task's benchmark budget in env steps / action_repeat."""
    eval_every: int | None = None
    """Agent steps between evaluations (default steps/10; smoke: 200)."""
    eval_episodes: int | None = None
    """Deterministic evaluation episodes, each with a fixed seed (default 10; smoke: 2)."""
    preset: str = "default"
    """default | smoke (the agent's SMOKE sizes and a budget of a few seconds)."""
    set: tuple[str, ...] = ()
    """Agent hyper-parameter overrides as key=value (values read as YAML), e.g. batch_size=64."""
    video: bool = False
    """Film the first episode of every evaluation into videos/eval-<step>.mp4."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name("agent", self.agent, agents.AGENTS)
        check_name("task", self.env, envs.TASKS)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("obs", self.obs, OBS)
        check_choice("planner", self.planner, PLANNERS)
        check_choice("preset", self.preset, PRESETS)
        for item in self.set:
            check("=" in item and item.split("=", 1)[0].strip() != "", "set", item, "key=value")
        for name in ("steps", "eval_every", "eval_episodes"):
            value = getattr(self, name)
            check(value is None or value > 0, name, value, "> 0")


def resolve_defaults(cfg: TrainAgentConfig) -> TrainAgentConfig:
    """Fill the unset budget fields from the preset and the task; set fields are kept."""
    values: dict[str, Any] = {
        "steps": task_steps(cfg.env),
        "eval_episodes": DEFAULT_EVAL_EPISODES,
    }
    if cfg.preset == "smoke":
        values.update(SMOKE)
    cfg = config_lib.replace(cfg, **{k: v for k, v in values.items() if getattr(cfg, k) is None})
    if cfg.eval_every is None:
        cfg = config_lib.replace(cfg, eval_every=max(1, cfg.steps // EVALUATIONS))  # type: ignore[operator]
    return cfg


def agent_config(cfg: TrainAgentConfig, agent_cls: Any | None = None) -> Any:
    """The agent's ``Config``: defaults, per-task values, the preset's, ``--set``, then the
    run fields (task, obs, objective, planner) the ``Config`` declares. Checks that the agent
    supports the requested objective, observations and planner."""
    agent_cls = agent_cls or resolve("agent", cfg.agent)
    name = cfg.agent
    check(
        cfg.objective in agent_cls.OBJECTIVES,
        "objective",
        cfg.objective,
        f"one of {', '.join(agent_cls.OBJECTIVES)} for agent {name!r}",
    )
    check(
        cfg.obs in agent_cls.OBS, "obs", cfg.obs, f"one of {', '.join(agent_cls.OBS)} for {name!r}"
    )
    if agent_cls.PLANNERS:
        check_choice("planner", cfg.planner, agent_cls.PLANNERS)
    fields = {f.name for f in dataclasses.fields(agent_cls.Config)}
    tuned = getattr(agent_cls, "tuned", None)
    values: dict[str, Any] = dict(tuned(cfg.env)) if tuned is not None else {}
    if cfg.preset == "smoke":
        config_lib.merge(values, agent_cls.SMOKE)
    run_values = {"task": cfg.env, "obs": cfg.obs, "objective": cfg.objective}
    run_values["planner"] = cfg.planner
    overrides = config_lib.parse_overrides(cfg.set)
    clash = sorted(overrides.keys() & run_values.keys())
    if clash:
        key = clash[0]
        raise ConfigError(f"invalid set={key}=...: give {key} as --{key}, not through --set")
    config_lib.merge(values, overrides)
    values.update({k: v for k, v in run_values.items() if k in fields})
    return config_lib.component_config(agent_cls.Config, values, name)


def run_name(cfg: TrainAgentConfig, agent_cls: Any) -> str:
    """``<agent>[-<objective>][-<planner>]-<env>[-pixels]``: the parts that can vary."""
    parts = [cfg.agent]
    if len(agent_cls.OBJECTIVES) > 1:
        parts.append(cfg.objective)
    if len(agent_cls.PLANNERS) > 1:
        parts.append(cfg.planner)
    parts.append(cfg.env)
    if cfg.obs != "state":
        parts.append(cfg.obs)
    return "-".join(parts)


def make_envs(cfg: TrainAgentConfig) -> tuple[Any, Any]:
    """The training env and the evaluation env (seeded apart); problems become user errors."""
    from agents.base import make_agent_env
    from envs.rendering import RenderingError
    from envs.wrappers import StepBudget

    try:
        train = StepBudget(make_agent_env(cfg.env, cfg.obs, seed=cfg.seed), cfg.steps)  # type: ignore[arg-type]
        evaluation = make_agent_env(cfg.env, cfg.obs, seed=cfg.seed + EVAL_SEED_OFFSET)
    except (ValueError, envs.MissingExtraError, RenderingError) as e:
        raise UserError(str(e)) from None
    return train, evaluation


def eval_seed(seed: int, episode: int) -> int:
    """Reset seed of evaluation episode ``episode``: the same episodes at every evaluation."""
    return EVAL_SEED_OFFSET + 10_000 * seed + episode


def evaluate_agent(
    agent: Any, env: Any, episodes: int, seed: int, frames: Any = None
) -> tuple[dict[str, float], np.ndarray | None]:
    """Run ``episodes`` deterministic episodes; return the mean metrics and, with a frame
    source ``frames() -> (H, W, 3)``, the first episode's frames ``(T + 1, H, W, 3)``.
    ``eval/success``: the episode succeeded by its task's rule (the goal test held at some
    step, or at the last for a goal to hold); ``eval/final_success``: it held at the last."""
    returns, successes, final_successes, lengths, act_seconds = [], [], [], [], []
    video = None
    for k in range(episodes):
        obs, _ = env.reset(seed=eval_seed(seed, k))
        film = frames is not None and k == 0
        images = [frames()] if film else []
        state, ret, length, success = None, 0.0, 0, False
        while True:
            start = time.perf_counter()
            action, state = agent.act(obs, state, explore=False)
            act_seconds.append(time.perf_counter() - start)
            obs, reward, terminated, truncated, info = env.step(action)
            ret, length = ret + float(reward), length + 1
            success = episode_success(success, info)
            if film:
                images.append(frames())
            if terminated or truncated:
                break
        returns.append(ret)
        successes.append(float(success))
        final_successes.append(float(bool(info.get("success", False))))
        lengths.append(length)
        if film:
            video = np.stack(images)
    metrics = {
        "eval/return": float(np.mean(returns)),
        "eval/return_std": float(np.std(returns)),
        "eval/success": float(np.mean(successes)),
        "eval/final_success": float(np.mean(final_successes)),
        "eval/length": float(np.mean(lengths)),
        "eval/act_ms": 1000 * float(np.mean(act_seconds)),
    }
    return metrics, video


class Progress:
    """The loop's own counters, saved in the checkpoint next to the agent."""

    def __init__(self) -> None:
        self.evaluations = 0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.last_eval: dict[str, float] = {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "evaluations": self.evaluations,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "last_eval": dict(self.last_eval),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.evaluations = int(state["evaluations"])
        self.train_seconds = float(state["train_seconds"])
        self.eval_seconds = float(state["eval_seconds"])
        self.last_eval = {k: float(v) for k, v in state["last_eval"].items()}


class RunInfo:
    """The resolved agent config, kept in the checkpoint so a run can be rebuilt as trained."""

    def __init__(self, agent_cfg: Any):
        self.agent_cfg = agent_cfg

    def state_dict(self) -> dict[str, Any]:
        return {"agent_config": config_lib.to_dict(self.agent_cfg)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: a resumed run is built from this state beforehand."""


def build_agent(
    cfg: TrainAgentConfig, agent_cls: Any, agent_cfg: Any, env: Any, device: torch.device
) -> Any:
    """The agent of class ``agent_cls`` with settings ``agent_cfg`` acting in ``env``."""
    try:
        return agent_cls(agent_cfg, env, device, cfg.seed)
    except ValueError as e:  # e.g. an action space the agent cannot handle
        raise UserError(f"agent {cfg.agent!r} in task {cfg.env!r}: {e}") from None


def resumed_agent_config(run: Run, agent_cls: Any, agent_cfg: Any) -> Any:
    """The agent settings a resumed run continues with: its checkpoint's, whatever the
    defaults, tuned values or presets say now (a note says when they differ)."""
    if run.resume_state is None:
        return agent_cfg
    saved = run.resume_state["info"]["agent_config"]
    if saved != config_lib.to_dict(agent_cfg):
        print(f"note: continuing with the agent settings saved in {run.dir}, not today's")
    return config_lib.from_dict(agent_cls.Config, saved, where="the checkpoint's agent_config")


def train_agent(cfg: TrainAgentConfig, run_dir: Path | None = None) -> Path:
    """Train ``cfg.agent`` in ``cfg.env`` with evaluations between chunks; return the folder
    (``run_dir`` when given: a new folder at that path, as a study's cells are laid out)."""
    torch.set_num_threads(cfg.threads)
    cfg = resolve_defaults(cfg)
    agent_cls = resolve("agent", cfg.agent)
    agent_cfg = agent_config(cfg, agent_cls)  # every user error before any work
    device = select_device(cfg.device)
    run = Run.reopen(cfg.resume, cfg) if cfg.resume is not None else None
    if run is not None:
        agent_cfg = resumed_agent_config(run, agent_cls, agent_cfg)
    seed_everything(cfg.seed)
    env, eval_env = make_envs(cfg)
    agent = build_agent(cfg, agent_cls, agent_cfg, env, device)
    if run is None:  # the folder is made once the agent could be built
        run = Run.create(cfg, KIND, run_name(cfg, agent_cls), run_dir)
        run.writer.add_text("agent_config", yaml.safe_dump(config_lib.to_dict(agent_cfg)))
    progress, info = Progress(), RunInfo(agent_cfg)
    restore(run, {"agent": agent, "progress": progress, "info": info})
    frames = None
    if cfg.video:
        from envs.tasks import get_task

        frames = get_task(cfg.env).frames(eval_env, VIDEO_SIZE, fast=False)

    bar = tqdm(
        total=cfg.steps, initial=agent.env_steps, disable=cfg.quiet, desc=run_name(cfg, agent_cls)
    )

    def log(metrics: Mapping[str, float], env_step: int) -> None:
        check_finite(metrics, env_step)
        run.log(metrics, env_step)
        bar.update(max(0, min(env_step, cfg.steps) - bar.n))
        if "charts/episodic_return" in metrics:
            bar.set_postfix(ret=f"{float(metrics['charts/episodic_return']):.3g}")

    while agent.env_steps < cfg.steps:  # type: ignore[operator]
        target = min(cfg.steps, (agent.env_steps // cfg.eval_every + 1) * cfg.eval_every)  # type: ignore[operator]
        start = time.perf_counter()
        env.steps = agent.env_steps  # a resumed run's budget counts from its checkpoint
        agent.train_until(env, target, log)
        progress.train_seconds += time.perf_counter() - start
        start = time.perf_counter()
        metrics, video = evaluate_agent(agent, eval_env, cfg.eval_episodes, cfg.seed, frames)  # type: ignore[arg-type]
        progress.eval_seconds += time.perf_counter() - start
        step = agent.env_steps
        progress.evaluations += 1
        progress.last_eval = metrics
        run.log(metrics, step)
        if video is not None:
            write_eval_video(run, video, step)
        bar.update(max(0, min(step, cfg.steps) - bar.n))  # type: ignore[type-var]
        bar.set_postfix(eval=f"{metrics['eval/return']:.3g}")
        run.save_checkpoint(
            {
                "agent": agent.state_dict(),
                "progress": progress.state_dict(),
                "info": info.state_dict(),
            },
            step,
        )
    bar.close()
    if getattr(agent, "TRACES", False):  # discrete active inference: beliefs and EFE pictures
        from runs.discrete_report import write_agent_report

        seeds = [eval_seed(cfg.seed, k) for k in range(REPORT_EPISODES)]
        write_agent_report(run, agent, eval_env, seeds, agent.env_steps)
    env.close()
    eval_env.close()
    final = {
        **progress.last_eval,
        "evaluations": progress.evaluations,
        "env_steps": agent.env_steps,
        "train_seconds": progress.train_seconds,
        "eval_seconds": progress.eval_seconds,
        "train_sps": agent.env_steps / max(progress.train_seconds, 1e-9),
    }
    return run.finish(final, agent.env_steps)


def write_eval_video(run: Run, frames: np.ndarray, step: int) -> Path:
    """``videos/eval-<step>.mp4`` in the run folder and a TensorBoard video."""
    from envs.rendering import quiet_headless_pygame
    from runs.video import write_mp4

    path = write_mp4(frames, run.dir / "videos" / f"eval-{step:07d}.mp4", VIDEO_FPS)
    quiet_headless_pygame()  # TensorBoard's video encoder imports moviepy, which imports pygame
    run.log_video("eval/video", frames, step, fps=VIDEO_FPS)
    return path


# -- trained runs as policies (record --run) ---------------------------------------------------


class ExploitPolicy:
    """A trained agent's deterministic policy: ``act(obs, state) -> (action, state)``."""

    def __init__(self, agent: Any):
        self.agent = agent

    def act(self, obs: Any, state: Any = None) -> tuple[Any, Any]:
        return self.agent.act(obs, state, explore=False)


def load_trained_agent(run_dir: Path, device: torch.device) -> tuple[TrainAgentConfig, Any]:
    """The run's config and its agent rebuilt from ``config.yaml`` and the last checkpoint."""
    from runs.run import load_trained_run

    # On the CPU, as a resumed run loads it: agents read parts of it with numpy.
    cfg, state, path = load_trained_run(run_dir, TrainAgentConfig, "cpu")
    agent_cls = resolve("agent", cfg.agent)
    agent_cfg = config_lib.from_dict(
        agent_cls.Config, state["info"]["agent_config"], where=str(path)
    )
    from agents.base import make_agent_env

    agent = agent_cls(agent_cfg, make_agent_env(cfg.env, cfg.obs), device, cfg.seed)
    load_into(agent, state["agent"], path)
    return cfg, agent


def load_agent_policy(run_dir: Path, env: Any) -> ExploitPolicy:
    """``record --run``'s loader for agent runs; ``env`` must be the run's task and obs."""
    cfg, agent = load_trained_agent(run_dir, torch.device("cpu"))
    from envs.tasks import get_task

    gym_id = get_task(cfg.env).gym_id
    trained_space = agent_observation_space(cfg)
    if env.spec is None or env.spec.id != gym_id or env.observation_space != trained_space:
        raise UserError(
            f"{run_dir} was trained in {cfg.env} with {cfg.obs} observations: "
            f"record it with --env {cfg.env} --obs-mode {cfg.obs}"
        )
    return ExploitPolicy(agent)


def agent_observation_space(cfg: TrainAgentConfig) -> Any:
    """The observation space agents of run config ``cfg`` act on."""
    from agents.base import make_agent_env

    env = make_agent_env(cfg.env, cfg.obs)
    space = env.observation_space
    env.close()
    return space
