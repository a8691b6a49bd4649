"""World-model quality and speed on random-policy experience of reacher and inverted-pendulum.

For every task x observation (state, pixels) x model (rssm, mdnrnn, ensemble on state only)
the benchmark collects random-policy experience, trains the model for a time budget and
prints, against two baselines computed on the same held-out chunks (repeating the last
observation; a linear model fitted by least squares, state only):

- open-loop MSE per horizon (1, 5, 10, 25, 50; horizons longer than the held-out episodes
  are left out), and PSNR for pixels;
- reward MSE over the imagined steps (and the variance of the true rewards, for scale);
- training throughput in sequence steps (observations) per second;
- imagination speed: latent steps per second and milliseconds per plan, a plan being
  5 iterations of 1,000 candidates x 15 steps followed by the reward head, in float32 and
  (where the CPU or GPU has it natively) in bfloat16, the agents' ``precision=auto``.

The last line is one JSON object with every number.

    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_world_models.py --quick
    .venv/bin/python benchmarks/bench_world_models.py --only reacher:state:ensemble --seconds 60
    .venv/bin/python benchmarks/bench_world_models.py --only inverted-pendulum:pixels:rssm \
        --set decoder_final_conv=true   # the older decoder, for comparison
    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_world_models.py --speed

``--speed`` only times imagination (untrained state models, their ``STATE`` sizes, the
tasks' observation and action sizes): no collection, training or evaluation.

Targets: every model beats both baselines at every horizon up to 25 on state tasks; pixel
predictions after 10 steps stay recognisable (PSNR); a plan takes under 100 ms for the
state models on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import torch

from envs.tasks import make_env
from runs.config import component_config, parse_overrides
from runs.registry import resolve
from runs.run import seed_everything
from runs.train_world_model import (
    CONTEXT,
    EVAL_SEED_OFFSET,
    ActionCodec,
    empty_replay,
    observation_spec,
    random_experience,
)
from world_models.base import native_bfloat16
from world_models.evaluation import (
    HORIZONS,
    LinearDynamics,
    imagination_speed,
    mean_elbo,
    open_loop_errors,
)

TASKS = ("reacher", "inverted-pendulum")
OBS = ("state", "pixels")
MODELS = ("rssm", "mdnrnn", "ensemble")
MODES = {
    # collect: random environment steps; seconds: training budget per model and observation
    "quick": {"collect": 10000, "eval_episodes": 20, "seconds": {"state": 90, "pixels": 90}},
    "full": {"collect": 30000, "eval_episodes": 50, "seconds": {"state": 300, "pixels": 600}},
}
LR = {"rssm": 1e-3, "mdnrnn": 1e-3, "ensemble": 1e-3}
# Pixel models on a CPU: narrower conv stacks and shorter chunks, or they would take only a
# few hundred steps in their budget.
CPU_PIXELS = {
    "rssm": ({"channels": (16, 32, 64, 128), "deter": 128, "hidden": 128, "embed": 128}, 16),
    "mdnrnn": ({"channels": (16, 32, 64, 128)}, 16),
}
# Starts per horizon scored open loop (pixels decode one frame per start).
EVAL_STARTS = {"state": 1000, "pixels": 300}


def cases(only: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for task in TASKS:
        for obs in OBS:
            for model in MODELS:
                if model == "ensemble" and obs == "pixels":
                    continue
                name = f"{task}:{obs}:{model}"
                if not only or any(name.startswith(o) for o in only):
                    out.append((task, obs, model))
    return out


def run_case(
    task: str,
    obs: str,
    name: str,
    mode: str,
    seconds: float,
    seed: int,
    particles: int,
    device: torch.device,
    overrides: dict | None = None,
) -> dict:
    """Collect, train for ``seconds``, evaluate: one row of the table (``overrides``: model
    Config fields on top of the benchmark's sizes)."""
    settings = MODES[mode]
    seed_everything(seed)
    env = make_env(task, obs, seed=seed)
    start = time.perf_counter()
    collect = settings["collect"]
    train = random_experience(env, empty_replay(env, 2 * collect + 2), steps=collect)
    spec, action_dim = observation_spec(env), ActionCodec(env.action_space).dim
    env.close()
    eval_env = make_env(task, obs, seed=seed + EVAL_SEED_OFFSET)
    episodes = settings["eval_episodes"]
    held_out = random_experience(
        eval_env, empty_replay(eval_env, 2000 * episodes), episodes=episodes
    )
    eval_env.close()
    collect_seconds = time.perf_counter() - start

    cls = resolve("world model", name)
    sizes, seq_len = dict(cls.STATE) if obs == "state" else {}, cls.TRAIN["seq_len"]
    if obs == "pixels" and device.type == "cpu":
        sizes, seq_len = CPU_PIXELS[name]
    model_cfg = component_config(cls.Config, {**sizes, **(overrides or {})}, name)
    model = cls(model_cfg, spec, action_dim).to(device)
    if obs == "state":
        model.fit_normalizer(train.transitions())
    opt = model.optimizers(LR[name])
    lengths = sorted(train.episode_lengths())
    # Random inverted-pendulum episodes last a few steps: chunks must fit in most of them.
    seq_len = max(2, min(seq_len, lengths[len(lengths) // 4]))
    batch = cls.TRAIN["batch_size"]
    model.train()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train_step(train.sample(batch, seq_len).to(device), opt)
        steps += 1
    train_seconds = time.perf_counter() - start
    model.eval()
    # Random inverted-pendulum episodes are shorter than a 5-frame context plus one step.
    context = max(1, min(CONTEXT[obs], max(held_out.episode_lengths()) - 2))
    linear = LinearDynamics.fit(train.transitions()) if obs == "state" else None
    limit = EVAL_STARTS[obs]
    errors = open_loop_errors(model, held_out, context, HORIZONS, linear, particles, limit)
    # The predictive mean of 16 sampled rollouts, for the JSON line.
    sampled = open_loop_errors(model, held_out, context, HORIZONS, None, 16, limit // 5)
    errors.update({f"p16_{k}": v for k, v in sampled.items() if k.startswith("mse_h")})
    elbo_len = min(seq_len, max(held_out.episode_lengths()))
    speed = speeds(model)
    return {
        "task": task,
        "obs": obs,
        "model": name,
        "device": str(device),
        "steps": steps,
        "seq_len": seq_len,
        "context": context,
        "train_seconds": round(train_seconds, 1),
        "collect_seconds": round(collect_seconds, 1),
        "seq_steps_per_s": steps * batch * seq_len / train_seconds,
        "elbo": mean_elbo(model, held_out, elbo_len) if elbo_len >= 2 else float("nan"),
        **errors,
        **speed,
    }


def speed_rows(only: list[str], device: torch.device, repeats: int = 10) -> list[dict]:
    """Imagination speed of the untrained state models (the weights do not change the work)."""
    rows = []
    for task, obs, name in cases(only):
        if obs != "state":
            continue
        env = make_env(task, obs, seed=0)
        spec, action_dim = observation_spec(env), ActionCodec(env.action_space).dim
        env.close()
        cls = resolve("world model", name)
        torch.manual_seed(0)
        model = cls(cls.Config(**cls.STATE), spec, action_dim).to(device)
        rows.append({"task": task, "model": name, **speeds(model, repeats)})
        print(
            f"{task:<18} {name:<9} {plan_ms(rows[-1])} ms/plan "
            f"{rows[-1]['latent_steps_per_s'] / 1e6:>5.2f} M latent steps/s (float32)",
            flush=True,
        )
    return rows


def speeds(model: torch.nn.Module, repeats: int = 3) -> dict[str, float]:
    """Imagination speed in float32 and, where the hardware has it, in bfloat16 (the
    agents' ``precision=auto``): keys ``plan_ms``, ``latent_steps_per_s`` and the same with
    ``_bf16``."""
    out = imagination_speed(model, repeats=repeats, precision="float32")
    if native_bfloat16(model.device.type):
        low = imagination_speed(model, repeats=repeats, precision="bfloat16")
        out.update({f"{k}_bf16": v for k, v in low.items()})
    return out


def plan_ms(row: dict) -> str:
    """``float32/bfloat16`` milliseconds per plan (bfloat16 where measured)."""
    low = f"/{row['plan_ms_bf16']:.0f}" if "plan_ms_bf16" in row else ""
    return f"{row['plan_ms']:.0f}{low}"


def beats_baselines(row: dict, up_to: int = 25) -> bool | None:
    """Whether the model's MSE is below both baselines at every reported horizon <= up_to."""
    checks = []
    for h in HORIZONS:
        if h > up_to or f"mse_h{h}" not in row:
            continue
        for baseline in ("repeat", "linear"):
            if f"mse_h{h}_{baseline}" in row:
                checks.append(row[f"mse_h{h}"] < row[f"mse_h{h}_{baseline}"])
    return all(checks) if checks else None


def print_table(rows: list[dict]) -> None:
    head = f"{'case':<30} {'steps':>6} {'seq/s':>7} " + " ".join(
        f"{'h' + str(h):>26}" for h in HORIZONS
    )
    print(head + f" {'reward':>17} {'lat.steps/s':>11} {'plan ms f32/bf16':>16}  beats")
    print(" " * 46 + "  (model / repeat / linear MSE; pixels: model MSE, PSNR dB model/repeat)")
    for r in rows:
        cells = []
        for h in HORIZONS:
            if f"mse_h{h}" not in r:
                cells.append(f"{'n/a':>26}")
            elif r["obs"] == "pixels":
                psnr = f"{r[f'psnr_h{h}']:>7.1f}/{r[f'psnr_h{h}_repeat']:<5.1f}"
                cells.append(f"{r[f'mse_h{h}']:>8.4f} {psnr}    ")
            else:
                cells.append(
                    f"{r[f'mse_h{h}']:>8.3g}/{r[f'mse_h{h}_repeat']:<8.3g}/{r[f'mse_h{h}_linear']:<8.3g}"
                )
        reward = (
            f"{r.get('reward_mse', float('nan')):.3g}/{r.get('reward_mse_mean', float('nan')):.3g}"
        )
        beats = beats_baselines(r)
        print(
            f"{r['task'] + ':' + r['obs'] + ':' + r['model']:<30} {r['steps']:>6} "
            f"{r['seq_steps_per_s']:>7.0f} " + " ".join(cells) + f" {reward:>17} "
            f"{r['latent_steps_per_s']:>11.3g} {plan_ms(r):>16}  "
            + ("-" if beats is None else "yes" if beats else "NO")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short budgets (about 15 minutes)")
    parser.add_argument("--only", nargs="*", default=[], help="cases by prefix: task[:obs[:model]]")
    parser.add_argument("--seconds", type=float, default=None, help="training budget per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu | cuda (imagination is timed there)")
    parser.add_argument(
        "--particles", type=int, default=0, help="open loop: 0 follows the mode, N averages N draws"
    )
    parser.add_argument("--speed", action="store_true", help="only time imagination (minutes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="model Config overrides"
    )
    args = parser.parse_args()
    overrides = parse_overrides(args.set)
    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    device = torch.device(args.device)
    if args.speed:
        rows = speed_rows(args.only, device)
        print(json.dumps({"bench": "world_models", "mode": "speed", "threads": args.threads,
                          "rows": rows}))  # fmt: skip
        return
    rows = []
    for task, obs, name in cases(args.only):
        seconds = args.seconds or MODES[mode]["seconds"][obs]
        rows.append(
            run_case(task, obs, name, mode, seconds, args.seed, args.particles, device, overrides)
        )
        print_table(rows[-1:])
    print()
    print_table(rows)
    print(
        json.dumps(
            {
                "bench": "world_models",
                "mode": "quick" if args.quick else "full",
                "overrides": overrides,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
