"""``activegen record``: roll a policy out in a task and save the episodes as videos.

A policy is anything with ``act(obs, state) -> (action, state)`` (``runs.policies``):
``--policy random`` today, a trained agent with ``--run RUN_DIR`` once agents register a
loader. Each episode becomes ``videos/episode-<k>.mp4`` and ``.gif`` in a run folder
``<out>/record/<task>/<stamp>/`` and a TensorBoard video; returns, lengths and success go
to ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

import envs
from runs import config as config_lib
from runs.config import RunOptions, check, check_choice, check_positive
from runs.errors import ConfigError, UserError
from runs.policies import POLICIES, load_run_policy, make_policy
from runs.registry import check_name, resolve
from runs.run import Run, require_run_dir, seed_everything
from runs.video import save_episode_video


@dataclasses.dataclass(frozen=True)
class RecordConfig(RunOptions):
    """Record episodes of a policy in a task as mp4 and GIF videos."""

    env: str | None = None
    """Task to record (``activegen list`` shows them); default: the run's task with --run,
    else reacher."""
    policy: str = "random"
    """Policy that needs no training (random); ignored with --run."""
    run: Path | None = None
    """Run folder of a trained agent whose policy to record (instead of --policy)."""
    episodes: int = 2
    """Number of episodes, one video each."""
    obs_mode: str | None = None
    """Observations the policy sees: state | pixels | both; default: the run's with --run,
    else state."""
    action_repeat: int | None = None
    """Environment steps per action (the task's default when not given)."""
    max_steps: int | None = None
    """Stop an episode after this many actions (the task's episode length when not given)."""
    size: int = 256
    """Video frame size in pixels (square, even)."""
    fps: int = 30
    """Frames per second of the videos."""
    fast_render: bool = False
    """Draw videos with the fast observation settings (no shadows, no multisampling)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.env is not None:
            check_name("task", self.env, envs.TASKS)
        check_name("policy", self.policy, POLICIES)
        if self.obs_mode is not None:
            check_choice("obs_mode", self.obs_mode, envs.OBS_MODES)
        check_positive(self, "episodes", "fps")
        check(16 <= self.size <= 2048 and self.size % 2 == 0, "size", self.size, "even, 16..2048")
        if self.action_repeat is not None:
            check(self.action_repeat >= 1, "action_repeat", self.action_repeat, ">= 1")
        if self.max_steps is not None:
            check(self.max_steps >= 1, "max_steps", self.max_steps, ">= 1")


def with_run_defaults(cfg: RecordConfig) -> RecordConfig:
    """Fill ``env`` and ``obs_mode`` from the recorded run's config (or the plain defaults)."""
    trained: dict = {}
    if cfg.run is not None:
        trained = yaml.safe_load((require_run_dir(cfg.run) / "config.yaml").read_text()) or {}
    env = cfg.env or trained.get("env", "reacher")
    obs_mode = cfg.obs_mode or trained.get("obs", "state")
    return config_lib.replace(cfg, env=env, obs_mode=obs_mode)


def _make(cfg: RecordConfig):
    """The task and its env; missing extras and rendering problems become one-line errors."""
    from envs.rendering import RenderingError

    try:
        task = resolve("task", cfg.env)
        env = task.make(cfg.obs_mode, action_repeat=cfg.action_repeat, seed=cfg.seed)
        frames = task.frames(env, cfg.size, fast=cfg.fast_render)
    except (envs.MissingExtraError, RenderingError) as e:
        raise UserError(str(e)) from e
    return task, env, frames


def _state(obs):
    return obs["state"] if isinstance(obs, dict) else obs


def _belief_report(run: Run, env, policy, decisions: list, seen: list, episode: int) -> list[Path]:
    """Belief animation and EFE chart of an episode of a discrete active-inference agent
    (``runs.discrete_report``); nothing for other policies."""
    from runs.discrete_report import is_trace, write_episode_report

    if not is_trace(decisions):
        return []
    from envs.discrete import model_of

    model, policies = model_of(env), policy.agent.policies
    return write_episode_report(
        run, model, decisions, policies, seen, f"episode-{episode}", episode
    )


def record(cfg: RecordConfig) -> list[Path]:
    """Roll out ``cfg.episodes`` episodes, save their videos, return the video paths."""
    if cfg.resume is not None:
        raise ConfigError("record does not resume: its runs are short; run it again")
    cfg = with_run_defaults(cfg)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    task, env, frames = _make(cfg)
    policy = load_run_policy(cfg.run, env) if cfg.run else make_policy(cfg.policy, env, cfg.seed)
    paths: list[Path] = []
    returns, successes, total_steps = [], [], 0
    with Run.create(cfg, "record", cfg.env) as run:
        for k in tqdm(range(cfg.episodes), desc="record", disable=cfg.quiet):
            obs, _ = env.reset(seed=cfg.seed + k)
            state, images, ret, steps, success = None, [frames()], 0.0, 0, False
            decisions, seen = [], []  # the policy's states, for discrete agents' belief pictures
            while True:
                seen.append(obs)
                action, state = policy.act(obs, state)
                decisions.append(state)
                obs, reward, terminated, truncated, _ = env.step(action)
                images.append(frames())
                ret, steps = ret + float(reward), steps + 1
                if cfg.obs_mode != "pixels":
                    success = task.episode_success(success, bool(task.success(_state(obs))))
                if terminated or truncated or steps == cfg.max_steps:
                    break
            paths += save_episode_video(run, np.stack(images), k, cfg.fps)
            paths += _belief_report(run, env, policy, decisions, seen, k)
            metrics = {"episode/return": ret, "episode/length": steps}
            if cfg.obs_mode != "pixels":
                metrics["episode/success"] = float(success)
                successes.append(float(success))
            run.log(metrics, step=k)
            returns.append(ret)
            total_steps += steps
        env.close()
        final = {"episode/mean_return": float(np.mean(returns))}
        if successes:
            final["episode/success_rate"] = float(np.mean(successes))
        run.finish(final, total_steps)
    for path in paths:
        print(path)
    return paths
