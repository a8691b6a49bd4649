"""Train a world model on experience collected in a task; evaluate its open-loop predictions.

``activegen train-world-model --model rssm|mdnrnn|ensemble --env TASK --obs state|pixels
--collect random:N`` collects ``N`` environment steps with a uniformly random policy (or
loads recorded episodes with ``--collect rollouts:PATH``), trains with
:func:`runs.loop.train_loop` in ``<out>/world_model/<model>-<env>-<obs>/<stamp>/`` and
checkpoints the model, its optimiser and the replay buffer, so ``--resume`` continues
exactly. At the end, and again with ``activegen evaluate RUN_DIR``, the model is scored on
held-out random episodes: open-loop error per horizon against two baselines, reward error
and the ELBO, with ``videos/imagination.mp4`` (pixels: real frames beside imagined ones) or
``samples/imagination-*.png`` (state: real and imagined trajectories per dimension).

Model sizes: the model's ``Config`` defaults (sized for pixels), then its ``STATE``
overrides for state observations, then the ``smoke`` preset's, then ``--set key=value``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import envs
import world_models
from generative.base import DataSpec
from generative.evaluation import trainable_parameters
from runs import config as config_lib
from runs.checkpoint import load_into
from runs.config import RunOptions, check, check_choice, check_positive
from runs.errors import UserError
from runs.loop import train_loop
from runs.registry import check_name, resolve
from runs.run import Run, load_trained_run, seed_everything, select_device
from world_models.base import WorldModel
from world_models.evaluation import HORIZONS, LinearDynamics, mean_elbo, open_loop_errors
from world_models.replay import ReplayBuffer

KIND = "world_model"
PRESETS = ("default", "smoke")
OBS = ("state", "pixels")
COLLECTORS = ("random", "rollouts")
DEFAULT_BUDGET = {"steps": 5000, "batch_size": 16, "seq_len": 50, "lr": 1e-3}
DEFAULT_COLLECT = "random:5000"
SMOKE = {"steps": 20, "batch_size": 4, "seq_len": 8, "collect": "random:200", "eval_episodes": 2}
# Seed offset of the held-out evaluation episodes (never seen in training).
EVAL_SEED_OFFSET = 1_000_003
CONTEXT = {"state": 1, "pixels": 5}


@dataclasses.dataclass(frozen=True)
class TrainWorldModelConfig(RunOptions):
    """Collect experience in a task, train a world model on it and evaluate its predictions."""

    model: str = "rssm"
    """Registered world model: rssm | mdnrnn | ensemble (activegen list)."""
    env: str = "pendulum"
    """Registered task to collect experience in."""
    obs: str = "state"
    """What the model observes: state (vectors) | pixels (64x64 frames)."""
    collect: str | None = None
    """random:N (N environment steps of a uniformly random policy) or rollouts:PATH (episodes
    saved as .npz, a file or a folder); default random:5000, smoke: random:200."""
    preset: str = "default"
    """default | smoke (the model's SMOKE sizes and a budget of a few seconds)."""
    set: tuple[str, ...] = ()
    """Model hyper-parameter overrides as key=value (values read as YAML), e.g. deter=128."""
    steps: int | None = None
    """Optimisation steps (default: the model's own budget)."""
    batch_size: int | None = None
    """Chunks per batch (default: the model's own)."""
    seq_len: int | None = None
    """Observations per chunk (default: the model's own)."""
    lr: float | None = None
    """Learning rate (default: the model's own)."""
    capacity: int | None = None
    """Replay capacity in observations (default: room for everything collected)."""
    action_repeat: int | None = None
    """Environment steps per action (the task's default when not given)."""
    context: int | None = None
    """Observations seen before the first open-loop prediction starts (default: 1 for state,
    5 for pixels)."""
    eval_episodes: int | None = None
    """Held-out random episodes for the final evaluation (default 10; smoke: 2)."""
    log_every: int = 50
    """Steps between training-metric log lines."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one is always written at the end)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name("world model", self.model, world_models.WORLD_MODELS)
        check_name("task", self.env, envs.TASKS)
        check_choice("obs", self.obs, OBS)
        check_choice("preset", self.preset, PRESETS)
        if self.collect is not None:
            parse_collect(self.collect)
        for item in self.set:
            check("=" in item and item.split("=", 1)[0].strip() != "", "set", item, "key=value")
        check_positive(self, "log_every", "checkpoint_every")
        for name in ("steps", "batch_size", "lr", "capacity", "action_repeat", "context"):
            value = getattr(self, name)
            check(value is None or value > 0, name, value, "> 0")
        check(self.seq_len is None or self.seq_len >= 2, "seq_len", self.seq_len, ">= 2")
        check(
            self.eval_episodes is None or self.eval_episodes >= 0,
            "eval_episodes",
            self.eval_episodes,
            ">= 0",
        )
        check(
            self.model != "ensemble" or self.obs == "state",
            "obs",
            self.obs,
            "state for model=ensemble (it models state vectors)",
        )


def parse_collect(text: str) -> tuple[str, str]:
    """``"random:5000"`` -> ``("random", "5000")``; errors name the accepted forms."""
    kind, _, arg = text.partition(":")
    ok = kind in COLLECTORS and arg != ""
    if ok and kind == "random":
        ok = arg.isdigit() and int(arg) > 0
    check(ok, "collect", text, "random:N (N > 0 environment steps) or rollouts:PATH")
    return kind, arg


def resolve_defaults(cfg: TrainWorldModelConfig) -> TrainWorldModelConfig:
    """Fill the unset fields from the preset and the model's budget; set fields are kept."""
    model_cls = resolve("world model", cfg.model)
    values: dict[str, Any] = {
        **DEFAULT_BUDGET,
        **model_cls.TRAIN,
        "collect": DEFAULT_COLLECT,
        "eval_episodes": 10,
        "context": CONTEXT[cfg.obs],
    }
    if cfg.preset == "smoke":
        values.update(SMOKE)
        values["seq_len"] = min(SMOKE["seq_len"], model_cls.TRAIN.get("seq_len", 8))
    changes = {k: v for k, v in values.items() if getattr(cfg, k) is None}
    cfg = config_lib.replace(cfg, **changes)
    if cfg.capacity is None:
        kind, arg = parse_collect(cfg.collect)  # type: ignore[arg-type]
        # A random collection of N steps has at most N episodes, each one extra row.
        capacity = 2 * int(arg) + 2 if kind == "random" else 0
        cfg = config_lib.replace(cfg, capacity=capacity or None)
    return cfg


def model_config(cfg: TrainWorldModelConfig) -> Any:
    """The model's ``Config``: defaults, state sizes, the preset's overrides, then ``--set``."""
    model_cls = resolve("world model", cfg.model)
    values: dict[str, Any] = dict(model_cls.STATE) if cfg.obs == "state" else {}
    if cfg.preset == "smoke":
        config_lib.merge(values, model_cls.SMOKE)
    config_lib.merge(values, config_lib.parse_overrides(cfg.set))
    return config_lib.component_config(model_cls.Config, values, cfg.model)


# -- experience ------------------------------------------------------------------------------


def make_task_env(cfg: TrainWorldModelConfig, seed: int) -> Any:
    from envs.tasks import make_env

    try:
        return make_env(cfg.env, cfg.obs, action_repeat=cfg.action_repeat, seed=seed)
    except ValueError as e:
        raise UserError(str(e)) from None


class ActionCodec:
    """Continuous actions pass through; discrete ones become one-hot vectors."""

    def __init__(self, space: Any):
        import gymnasium as gym

        self.discrete = isinstance(space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(space, gym.spaces.Box):
            raise UserError(f"world models need Box or Discrete actions, not {space}")
        self.dim = int(space.n) if self.discrete else int(np.prod(space.shape))

    def vector(self, action: Any) -> np.ndarray:
        if self.discrete:
            out = np.zeros(self.dim, np.float32)
            out[int(action)] = 1.0
            return out
        return np.asarray(action, np.float32).reshape(self.dim)


def observation_spec(env: Any) -> DataSpec:
    shape = tuple(int(s) for s in env.observation_space.shape)
    return DataSpec(
        "image" if len(shape) == 3 else "vector", shape, 256 if len(shape) == 3 else None
    )


def empty_replay(env: Any, capacity: int) -> ReplayBuffer:
    spec = observation_spec(env)
    dtype = torch.uint8 if spec.kind == "image" else torch.float32
    return ReplayBuffer(capacity, spec.shape, ActionCodec(env.action_space).dim, dtype)


def random_experience(
    env: Any, buffer: ReplayBuffer, steps: int = 0, episodes: int = 0, quiet: bool = True
) -> ReplayBuffer:
    """Fill ``buffer`` with a uniformly random policy for ``steps`` environment steps or
    ``episodes`` whole episodes (the env's action space must be seeded)."""
    codec = ActionCodec(env.action_space)
    total = steps or episodes
    bar = tqdm(total=total, disable=quiet, desc="collect")
    done_steps = done_episodes = 0
    while (steps and done_steps < steps) or (episodes and done_episodes < episodes):
        obs, _ = env.reset()
        buffer.start_episode(np.asarray(obs))
        while True:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            done_steps += 1
            if steps:
                bar.update(1)
            if steps and done_steps >= steps:
                truncated = True
            buffer.add(codec.vector(action), float(reward), np.asarray(obs), terminated, truncated)
            if terminated or truncated:
                break
        done_episodes += 1
        if episodes:
            bar.update(1)
    bar.close()
    return buffer


def collect(cfg: TrainWorldModelConfig, env: Any) -> ReplayBuffer:
    """The training experience named by ``cfg.collect``."""
    kind, arg = parse_collect(cfg.collect)  # type: ignore[arg-type]
    if kind == "random":
        return random_experience(
            env, empty_replay(env, cfg.capacity), steps=int(arg), quiet=cfg.quiet
        )
    path = Path(arg)
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"no recorded rollouts (.npz) at {path}")
    key = "pixels" if cfg.obs == "pixels" else "obs"
    try:
        return ReplayBuffer.from_rollouts(files, cfg.capacity, obs_key=key)
    except (ValueError, KeyError) as e:
        raise UserError(f"cannot load rollouts from {path}: {e}") from None


def evaluation_episodes(cfg: TrainWorldModelConfig) -> ReplayBuffer:
    """Held-out random episodes, the same for every run with the same seed."""
    env = make_task_env(cfg, cfg.seed + EVAL_SEED_OFFSET)
    spec_steps = 1000 * max(1, cfg.eval_episodes or 0) + 1000
    buffer = random_experience(
        env, empty_replay(env, spec_steps * 2), episodes=cfg.eval_episodes or 0
    )
    env.close()
    return buffer


# -- training -------------------------------------------------------------------------------


class RunInfo:
    """What rebuilding the model needs besides its weights (kept in the checkpoint)."""

    def __init__(self, spec: DataSpec, action_dim: int, model_cfg: Any):
        self.spec, self.action_dim, self.model_cfg = spec, action_dim, model_cfg

    def state_dict(self) -> dict[str, Any]:
        return {
            "spec": {
                "kind": self.spec.kind,
                "shape": list(self.spec.shape),
                "levels": self.spec.levels,
            },
            "action_dim": self.action_dim,
            "model_config": config_lib.to_dict(self.model_cfg),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["spec"]["shape"] != list(self.spec.shape):
            raise UserError(
                f"checkpoint was trained on observations shaped {state['spec']['shape']}"
            )


def train_world_model(cfg: TrainWorldModelConfig) -> Path:
    """Collect, train and evaluate ``cfg.model`` on ``cfg.env``; return the run folder."""
    torch.set_num_threads(cfg.threads)
    cfg = resolve_defaults(cfg)
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    model_cls = resolve("world model", cfg.model)
    env = make_task_env(cfg, cfg.seed)
    spec = observation_spec(env)
    action_dim = ActionCodec(env.action_space).dim
    model: WorldModel = model_cls(model_config(cfg), spec, action_dim).to(device)
    run = Run.open(cfg, KIND, f"{cfg.model}-{cfg.env}-{cfg.obs}")
    if run.resume_state is None:
        replay = collect(cfg, env)
        if cfg.obs == "state":
            model.fit_normalizer(replay.transitions())
    else:  # the checkpoint holds the replay buffer, normaliser and all
        capacity = int(run.resume_state["replay"]["capacity"])
        replay = empty_replay(env, capacity)
    env.close()
    optimizers = model.optimizers(cfg.lr)  # type: ignore[arg-type]
    info = RunInfo(spec, action_dim, model.cfg)
    if run.resume_state is None and replay.num_chunks(cfg.seq_len) == 0:  # type: ignore[arg-type]
        run.close()
        raise UserError(
            f"no collected episode has {cfg.seq_len} observations (longest: "
            f"{max(replay.episode_lengths(), default=0)}); lower --seq-len or collect more"
        )
    rows = cfg.batch_size * cfg.seq_len  # type: ignore[operator]

    def step_fn(step: int) -> dict[str, float]:
        start = time.perf_counter()
        batch = replay.sample(cfg.batch_size, cfg.seq_len).to(device)  # type: ignore[arg-type]
        metrics = model.train_step(batch, optimizers)
        metrics["charts/seq_steps_per_s"] = rows / (time.perf_counter() - start)
        return metrics

    modules = {"model": model, **optimizers, "replay": replay, "info": info}
    start = time.perf_counter()
    model.train()
    last = train_loop(
        run,
        modules,
        step_fn,
        cfg.steps,  # type: ignore[arg-type]
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        quiet=cfg.quiet,
        desc=f"{cfg.model} on {cfg.env} ({cfg.obs})",
    )
    train_seconds = time.perf_counter() - start
    final = {**last, **report(run, model, replay, cfg, cfg.steps)}  # type: ignore[arg-type]
    final["params"] = trainable_parameters(model)
    final["train_seconds"] = train_seconds
    return run.finish(final, cfg.steps)  # type: ignore[arg-type]


# -- evaluation -----------------------------------------------------------------------------


def report(
    run: Run, model: WorldModel, replay: ReplayBuffer, cfg: TrainWorldModelConfig, step: int
) -> dict[str, float]:
    """Score ``model`` on held-out episodes, log ``eval/...`` and write the imagination video."""
    model.eval()
    episodes = evaluation_episodes(cfg)
    if episodes.num_episodes == 0:
        return {}
    context = cfg.context or CONTEXT[cfg.obs]
    linear = None
    if not model.pixels and replay.num_steps > 0:
        linear = LinearDynamics.fit(replay.transitions())
    limit = 300 if model.pixels else 1000  # starts per horizon; pixels decode one frame each
    errors = open_loop_errors(model, episodes, context, HORIZONS, linear, limit=limit)
    if not errors:
        print(f"note: held-out episodes are too short for {context} context observations")
    elbo_len = min(cfg.seq_len or 2, max(episodes.episode_lengths()))
    metrics = {f"eval/{k}": v for k, v in errors.items()}
    if elbo_len >= 2:
        metrics["eval/elbo"] = mean_elbo(model, episodes, elbo_len)
    run.log(metrics, step)
    print_report(metrics)
    write_imagination(run, model, episodes, context, step)
    return metrics


def print_report(metrics: dict[str, float]) -> None:
    horizons = [h for h in HORIZONS if f"eval/mse_h{h}" in metrics]
    if horizons:
        cols = ["model", "repeat"] + (
            ["linear"] if f"eval/mse_h{horizons[0]}_linear" in metrics else []
        )
        print("open-loop MSE  " + "  ".join(f"{c:>10}" for c in cols))
        for h in horizons:
            values = [metrics[f"eval/mse_h{h}"]] + [metrics[f"eval/mse_h{h}_{c}"] for c in cols[1:]]
            psnr = metrics.get(f"eval/psnr_h{h}")
            tail = f"   PSNR {psnr:.1f} dB" if psnr is not None else ""
            print(f"  h={h:<3}       " + "  ".join(f"{v:>10.4g}" for v in values) + tail)
    for key in ("eval/reward_mse", "eval/reward_mse_mean", "eval/elbo"):
        if key in metrics:
            print(f"{key[5:]:<14} {metrics[key]:.4g}")


@torch.no_grad()
def write_imagination(
    run: Run, model: WorldModel, episodes: ReplayBuffer, context: int, step: int, rows: int = 4
) -> None:
    """Real beside imagined observations from the same start and actions, open loop."""
    length = max(episodes.episode_lengths(), default=0)
    horizon = min(50, length - context)
    if horizon < 1:
        return
    chunks = episodes.chunks(context + horizon)
    assert chunks is not None
    obs, action = chunks.obs[:rows], chunks.action[:rows]
    pred, _ = model.open_loop(obs, action, context)
    real = obs[:, context:].float()
    pred = pred.cpu().float()
    if model.pixels:
        from runs.video import write_mp4

        pairs = torch.cat([real, pred], -1)  # (B, H, 3, 64, 128): real left, imagined right
        frames = pairs.permute(1, 0, 3, 4, 2).flatten(1, 2)  # (H, B * 64, 128, 3)
        frames = frames.round().clamp(0, 255).to(torch.uint8).numpy()
        write_mp4(frames, run.dir / "videos" / "imagination.mp4", fps=10)
        run.log_video("videos/imagination", frames, step, fps=10)
    else:
        run.log_image("imagination", trajectory_picture(real[0], pred[0]), step)


def trajectory_picture(real: torch.Tensor, pred: torch.Tensor) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 plot of real (solid) and imagined (dashed) trajectories
    ``(T, D)``, one panel per dimension."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = real.shape[-1]
    cols = min(4, dims)
    rows = -(-dims // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2 * rows), squeeze=False)
    for d, ax in enumerate(axes.flat):
        if d >= dims:
            ax.axis("off")
            continue
        ax.plot(real[:, d].numpy(), "k-", label="real")
        ax.plot(pred[:, d].numpy(), "r--", label="imagined")
        ax.set_title(f"obs[{d}]", fontsize=8)
        ax.tick_params(labelsize=6)
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def is_world_model_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a world-model run: ``<out>/world_model/<name>/<stamp>``."""
    return Path(run_dir).resolve().parent.parent.name == KIND


def load_world_model(
    run_dir: Path, device: torch.device
) -> tuple[TrainWorldModelConfig, WorldModel, dict[str, Any]]:
    """A world-model run's config, its trained model and its checkpoint."""
    cfg, state, path = load_trained_run(run_dir, TrainWorldModelConfig, device)
    info = state["info"]
    spec = DataSpec.from_dict(info["spec"])
    model_cls = resolve("world model", cfg.model)
    model_cfg = config_lib.from_dict(model_cls.Config, info["model_config"], where=str(path))
    model = model_cls(model_cfg, spec, int(info["action_dim"]))
    load_into(model, state["model"], path)
    return cfg, model.to(device).eval(), state


def evaluate_world_model(eval_cfg: Any) -> Path:
    """``activegen evaluate`` for a world-model run: recompute the ``eval/...`` metrics, write
    the imagination video, merge the metrics into ``summary.json``."""
    torch.set_num_threads(eval_cfg.threads)
    device = select_device(eval_cfg.device)
    cfg, model, state = load_world_model(eval_cfg.run_dir, device)
    seed_everything(cfg.seed)
    replay = ReplayBuffer(
        int(state["replay"]["capacity"]),
        model.spec.shape,
        model.action_dim,
        torch.uint8 if model.pixels else torch.float32,
    )
    replay.load_state_dict(state["replay"])
    step = int(state["step"])
    summary_path = Path(eval_cfg.run_dir) / "summary.json"
    previous = json.loads(summary_path.read_text())["metrics"] if summary_path.exists() else {}
    run = Run.reopen(Path(eval_cfg.run_dir), cfg)
    metrics = report(run, model, replay, cfg, step)
    return run.finish({**previous, **metrics}, step)
