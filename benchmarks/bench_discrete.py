"""Discrete active inference (pymdp): compile time, decision speed and success per task.

For each discrete task and policy depth (1, 2, 3 by default) builds a pymdp agent from the
task's true model (the task's other tuned settings, ``agents.discrete.TUNED``, kept), and
reports the time its step took to compile (the first decision of that model shape), the
milliseconds per decision after compilation, and over ``--episodes`` greedy episodes the
success rate, mean episode length and, in the T-maze, the rate at which the agent visited
the cue before entering an arm. Prints a table, then one JSON line.

    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_discrete.py
    .venv/bin/python benchmarks/bench_discrete.py --tasks tmaze --depths 2 3 --episodes 20
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from tables import table

from agents.base import make_agent_env
from agents.discrete import Config, PymdpAgent
from envs import discrete

TASKS = ("tmaze", "gridworld", "cue-chaining", "frozenlake")


def run_episodes(agent: PymdpAgent, task: str, episodes: int) -> dict[str, float]:
    """Greedy episodes with seeds 0..episodes-1: success, length, cue-first rate, ms/step."""
    env = make_agent_env(task)
    wins, lengths, cue_first, seconds = [], [], [], []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        state, path = None, []
        while True:
            start = time.perf_counter()
            action, state = agent.act(obs, state)
            seconds.append(time.perf_counter() - start)
            obs, _, terminated, truncated, info = env.step(action)
            path.append(int(obs[0]))
            if terminated or truncated:
                break
        wins.append(float(info["success"]))
        lengths.append(len(path))
        if task == "tmaze":
            arms = [i for i, loc in enumerate(path) if loc in (discrete.LEFT, discrete.RIGHT)]
            before = path[: arms[0]] if arms else path
            cue_first.append(float(bool(arms) and discrete.CUE in before))
    result = {
        "success": float(np.mean(wins)),
        "length": float(np.mean(lengths)),
        "ms_per_step": 1000 * float(np.median(seconds)),
        "steps_per_s": 1.0 / float(np.median(seconds)),
    }
    if cue_first:
        result["cue_first"] = float(np.mean(cue_first))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()

    rows = []
    for task in args.tasks:
        for depth in args.depths:
            cfg = Config(**{**PymdpAgent.tuned(task), "policy_len": depth, "task": task})
            agent = PymdpAgent(cfg, make_agent_env(task), None, seed=0)
            row = {"task": task, "depth": depth, "policies": len(agent.policies)}
            row["compile_s"] = agent.compile_seconds
            row.update(run_episodes(agent, task, args.episodes))
            rows.append(row)
            print(f"{task} depth {depth}: {row}", flush=True)
    columns = [
        ("task", "task", ""),
        ("depth", "depth", "d"),
        ("policies", "policies", ",d"),
        ("compile s", "compile_s", ".2f"),
        ("ms/step", "ms_per_step", ".2f"),
        ("steps/s", "steps_per_s", ",.0f"),
        ("success", "success", ".2f"),
        ("length", "length", ".1f"),
        ("cue first", "cue_first", ".2f"),
    ]
    print(table(rows, columns))
    print(json.dumps({"episodes": args.episodes, "results": rows}))


if __name__ == "__main__":
    main()
