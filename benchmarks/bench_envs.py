"""Environment throughput: raw Gymnasium vs. this project's wrapped tasks, and pixel frames.

For each task prints raw ``gym.make`` steps/s, wrapped steps/s in state mode (action
repeat 1, so both count the same physics steps), their ratio (target: >= 0.95) and 64x64
pixel observations per second. The last line is one JSON object with those figures.

    .venv/bin/python benchmarks/bench_envs.py --steps 300          # short check
    .venv/bin/python benchmarks/bench_envs.py --tasks reacher hopper --steps 5000

Raw and wrapped runs alternate (in alternating order) for ``--rounds`` rounds and the best
of each is kept, which makes the ratio robust to other jobs on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym

from envs import TASKS
from envs.tasks import get_task, make_env


def steps_per_second(env: gym.Env, steps: int, seed: int = 0) -> float:
    """Random-action steps per second, resetting at episode ends (actions drawn beforehand)."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def raw_env(name: str) -> gym.Env:
    """The task's plain ``gym.make`` env (its registration imported, nothing else added)."""
    task = get_task(name)
    make_env(name).close()  # selects the GL backend and registers the task's ids
    kwargs = dict(task.make_kwargs)
    if task.kind in ("classic", "discrete"):
        kwargs["render_mode"] = "rgb_array"
    return gym.make(task.gym_id, max_episode_steps=task.max_episode_steps, **kwargs)


def bench(name: str, steps: int, rounds: int, pixel_steps: int) -> dict[str, float]:
    raw, wrapped = raw_env(name), make_env(name, "state", action_repeat=1)
    best = {"raw": 0.0, "wrapped": 0.0}
    for k in range(rounds):
        # Alternate which goes first: the first run of a pair tends to be the slower one.
        order = (
            (("raw", raw), ("wrapped", wrapped))
            if k % 2 == 0
            else (("wrapped", wrapped), ("raw", raw))
        )
        for key, env in order:
            best[key] = max(best[key], steps_per_second(env, steps))
    raw_sps, wrapped_sps = best["raw"], best["wrapped"]
    raw.close()
    wrapped.close()
    pixels = make_env(name, "pixels", action_repeat=1, render_size=64)
    pixel_fps = steps_per_second(pixels, pixel_steps)
    pixels.close()
    return {
        "raw_steps_per_s": round(raw_sps, 1),
        "wrapped_steps_per_s": round(wrapped_sps, 1),
        "ratio": round(wrapped_sps / raw_sps, 3),
        "pixel_frames_per_s": round(pixel_fps, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps per timing run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/wrapped rounds")
    parser.add_argument("--pixel-steps", type=int, default=None, help="default: --steps / 5")
    parser.add_argument("--tasks", nargs="*", default=None, help="default: every task")
    args = parser.parse_args()
    names = args.tasks or [n for n in TASKS if n != "point-maze" or _has_robotics()]
    pixel_steps = args.pixel_steps or max(args.steps // 5, 20)
    results = {}
    print(f"{'task':<26} {'raw steps/s':>12} {'wrapped':>10} {'ratio':>6} {'64px frames/s':>14}")
    for name in names:
        r = results[name] = bench(name, args.steps, args.rounds, pixel_steps)
        print(
            f"{name:<26} {r['raw_steps_per_s']:>12.0f} {r['wrapped_steps_per_s']:>10.0f} "
            f"{r['ratio']:>6.3f} {r['pixel_frames_per_s']:>14.0f}"
        )
    print(json.dumps({"steps": args.steps, "tasks": results}))


def _has_robotics() -> bool:
    # find_spec, not import: importing gymnasium_robotics would import mujoco before
    # make_env has chosen its GL backend.
    return importlib.util.find_spec("gymnasium_robotics") is not None


if __name__ == "__main__":
    main()
