"""Agents against each other on the same tasks, budgets and seeds, with the train-agent protocol.

Every registered agent (``agents.AGENTS``) runs once per objective it supports (so the
active-inference agent appears with reward, preference, efe and feef, the SB3 baselines
with reward) in every task at the task's env-step budget, for each seed, through
``runs.train_agent.train_agent`` itself: chunks of ``eval_every`` steps, each followed by
deterministic evaluation episodes with fixed seeds. A uniformly random policy is evaluated
on the same episodes for scale. The table gives, per task and agent (mean ± std over seeds):
the final evaluation return and success rate, the return's gain over the random policy,
milliseconds per action at evaluation (planning latency for planners), training env steps
per second and the wall time. The last line is one JSON object with every run.

    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_agents.py --quick
    .venv/bin/python benchmarks/bench_agents.py --tasks pendulum --agents sac aif --seeds 3
    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_agents.py --latency

``--latency`` only times ``act`` of an untrained ``aif`` agent with its default (tuned)
settings on inverted-pendulum, reacher and mountaincar, per objective, imagining in
``--precision`` (auto | float32 | bfloat16): the planning latency of issue 7.

The full run (budgets below, 3 seeds, every agent) takes hours on 2 CPU cores: SAC alone runs
at ~30-45 steps/s there (``shared/machine-notes.md``), about 15 minutes per seed for the
31,500 agent steps (53,000 env steps) of the four tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

import agents
from agents.base import make_agent_env
from runs.registry import resolve
from runs.train_agent import (
    ENV_STEP_BUDGETS,
    TrainAgentConfig,
    agent_config,
    evaluate_agent,
    resolve_defaults,
    task_steps,
    train_agent,
)
from world_models.base import imagines_in_bfloat16

# The env-step budgets: inverted-pendulum 3,000, reacher 20,000, mountaincar 20,000,
# pendulum 10,000 (train-agent's defaults too, in agent decisions: budget / action repeat).
TASKS = ENV_STEP_BUDGETS
MODES = {
    "full": {"evaluations": 10, "eval_episodes": 10, "preset": "default", "steps": None},
    # Smoke-sized agents and a few hundred steps: checks the pipeline, not learning.
    "quick": {"evaluations": 2, "eval_episodes": 2, "preset": "smoke", "steps": 300},
}
QUICK_TASKS = ("pendulum", "inverted-pendulum")


class RandomActor:
    """Uniformly random actions: the scale every return is compared with."""

    def __init__(self, env: Any, seed: int):
        self.space = env.action_space
        self.space.seed(seed)

    def act(self, obs: Any, state: Any = None, explore: bool = False) -> tuple[np.ndarray, Any]:
        return self.space.sample(), None


def variants(names: list[str], failures: list[dict]) -> list[tuple[str, str]]:
    """``(agent, objective)`` pairs: every objective each selected agent supports (an agent
    that cannot be imported goes to ``failures``)."""
    out = []
    for name in names:
        try:
            cls = resolve("agent", name)
        except Exception as e:  # one broken agent must not hide the others' numbers
            failures.append({"agent": name, "error": f"{type(e).__name__}: {e}"})
            print(f"# {name}: FAILED {failures[-1]['error']}")
            continue
        out += [(name, objective) for objective in cls.OBJECTIVES]
    return out


def random_baseline(task: str, seed: int, episodes: int) -> dict[str, float]:
    """The random policy on the evaluation episodes of ``seed`` (the agents' own)."""
    env = make_agent_env(task, "state", seed=seed)
    metrics, _ = evaluate_agent(RandomActor(env, seed), env, episodes, seed)
    env.close()
    return metrics


def run_one(
    task: str, agent: str, objective: str, seed: int, mode: dict, out: Path, planner: str
) -> dict[str, Any]:
    """Train and evaluate one agent with one seed; one row of the JSON."""
    steps = mode["steps"] or task_steps(task)
    cfg = TrainAgentConfig(
        agent=agent,
        env=task,
        objective=objective,
        planner=planner,
        steps=steps,
        eval_every=max(1, steps // mode["evaluations"]),
        eval_episodes=mode["eval_episodes"],
        preset=mode["preset"],
        seed=seed,
        out=out,
        quiet=True,
        device="cpu",
    )
    start = time.perf_counter()
    run_dir = train_agent(cfg)
    seconds = time.perf_counter() - start
    summary = json.loads((Path(run_dir) / "summary.json").read_text())["metrics"]
    records = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["eval/return"]) for r in records if "eval/return" in r]
    plan_ms = [r["timing/plan_ms"] for r in records if "timing/plan_ms" in r]
    return {
        "task": task,
        "agent": agent,
        "objective": objective,
        "seed": seed,
        "steps": int(summary["env_steps"]),
        "return": summary["eval/return"],
        "success": summary["eval/success"],
        "act_ms": summary["eval/act_ms"],
        "train_plan_ms": float(np.mean(plan_ms)) if plan_ms else None,
        "train_sps": summary["train_sps"],
        "seconds": round(seconds, 1),
        "curve": curve,
        "run_dir": str(run_dir),
    }


# Task -> whether its episodes can end before the time limit (the pole falls, the car
# reaches the flag): a trained world model then reads its continuation head while planning,
# an untrained one (or one on reacher) skips it, so the benchmark sets which.
LATENCY_TASKS = {"inverted-pendulum": True, "reacher": False, "mountaincar": True}


def planning_latency(
    task: str,
    objective: str,
    precision: str = "auto",
    overrides: tuple[str, ...] = (),
    repeats: int = 10,
) -> dict[str, Any]:
    """Milliseconds per ``act`` of an untrained ``aif`` agent configured as train-agent
    configures it (``overrides``: its ``--set`` items; the world model's weights do not
    change the work of a plan, whether it has seen episodes end does): best and median of
    ``repeats`` warm calls."""
    agent_cls = resolve("agent", "aif")
    env = make_agent_env(task, "state", seed=0)
    run = TrainAgentConfig(
        agent="aif", env=task, objective=objective, set=(*overrides, f"precision={precision}")
    )
    cfg = agent_config(resolve_defaults(run), agent_cls)
    torch.manual_seed(0)
    agent = agent_cls(cfg, env, torch.device("cpu"), 0)
    agent.model.ends_seen.fill_(LATENCY_TASKS[task])
    obs, _ = env.reset(seed=0)
    _, state = agent.act(obs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, state = agent.act(obs, state)
        times.append(1000 * (time.perf_counter() - start))
    env.close()
    return {
        "task": task,
        "objective": objective,
        "candidates": cfg.candidates,
        "particles": cfg.particles,
        "horizon": cfg.horizon,
        "iterations": cfg.iterations,
        "proposals": cfg.policy_proposals,
        "act_ms_best": min(times),
        "act_ms_median": statistics.median(times),
    }


def machine(precision: str) -> dict[str, Any]:
    """The CPU a latency was measured on, and the precision it imagined in: the same plan
    took 4-5x longer on a 2 GHz AVX2 CPU in float32 than on one that multiplies bfloat16."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    fields = dict(line.split(":", 1) for line in reversed(info.splitlines()) if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return {
        "cpu": fields.get("model name", platform.processor()),
        "mhz": float(fields.get("cpu MHz", "nan")),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "imagination": (
            "bfloat16" if imagines_in_bfloat16(torch.device("cpu"), precision) else "float32"
        ),
    }


def latency_main(objectives: list[str], precision: str, overrides: tuple[str, ...]) -> None:
    rows = [planning_latency(t, o, precision, overrides) for t in LATENCY_TASKS for o in objectives]
    cpu = machine(precision)
    print(f"{cpu['cpu']} ({cpu['isa']}, {cpu['mhz']:.0f} MHz), {torch.get_num_threads()} "
          f"thread(s), imagination in {cpu['imagination']}")  # fmt: skip
    size = "N x P x H x it [+K]"
    print(f"{'task':<18} {'objective':<11} {size:>20} {'best ms':>8} {'median':>8}")
    for r in rows:
        size = f"{r['candidates']}x{r['particles']}x{r['horizon']}x{r['iterations']}"
        size += f"+{r['proposals']}" if r["proposals"] else ""
        print(
            f"{r['task']:<18} {r['objective']:<11} {size:>20} "
            f"{r['act_ms_best']:>8.1f} {r['act_ms_median']:>8.1f}"
        )
    print(json.dumps({"bench": "agents", "mode": "latency", "threads": torch.get_num_threads(),
                      "precision": precision, "set": list(overrides), **cpu,
                      "rows": rows}))  # fmt: skip


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict], randoms: dict[tuple[str, int], dict]) -> list[dict]:
    """Mean and std over seeds per (task, agent, objective)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["agent"], r["objective"]), []).append(r)
    out = []
    for (task, agent, objective), rs in groups.items():
        gains = [r["return"] - randoms[(task, r["seed"])]["eval/return"] for r in rs]
        ret, success, gain = (
            _mean_std([r["return"] for r in rs]),
            _mean_std([r["success"] for r in rs]),
            _mean_std(gains),
        )
        out.append(
            {
                "task": task,
                "agent": agent,
                "objective": objective,
                "seeds": len(rs),
                "steps": rs[0]["steps"],
                "return_mean": ret[0],
                "return_std": ret[1],
                "success_mean": success[0],
                "success_std": success[1],
                "gain_over_random_mean": gain[0],
                "gain_over_random_std": gain[1],
                "act_ms": statistics.fmean(r["act_ms"] for r in rs),
                "train_sps": statistics.fmean(r["train_sps"] for r in rs),
                "minutes": sum(r["seconds"] for r in rs) / 60,
            }
        )
    return out


def print_table(summary: list[dict], randoms: dict[tuple[str, int], dict]) -> None:
    print(
        f"{'task':<18} {'agent':<16} {'seeds':>5} {'steps':>6} {'eval return':>18} "
        f"{'success':>11} {'gain vs random':>17} {'ms/action':>9} {'steps/s':>8} {'min':>6}"
    )
    for task in dict.fromkeys(s["task"] for s in summary):
        rand = [v for (t, _), v in randoms.items() if t == task]
        ret = _mean_std([v["eval/return"] for v in rand])
        success = _mean_std([v["eval/success"] for v in rand])
        print(
            f"{task:<18} {'random':<16} {len(rand):>5} {'':>6} {ret[0]:>10.1f} ± {ret[1]:<5.1f} "
            f"{success[0]:>5.2f} ± {success[1]:<3.2f}"
        )
        for s in (s for s in summary if s["task"] == task):
            name = s["agent"] if s["objective"] == "reward" else f"{s['agent']}:{s['objective']}"
            print(
                f"{'':<18} {name:<16} {s['seeds']:>5} {s['steps']:>6} "
                f"{s['return_mean']:>10.1f} ± {s['return_std']:<5.1f} "
                f"{s['success_mean']:>5.2f} ± {s['success_std']:<3.2f} "
                f"{s['gain_over_random_mean']:>9.1f} ± {s['gain_over_random_std']:<5.1f} "
                f"{s['act_ms']:>9.2f} {s['train_sps']:>8.1f} {s['minutes']:>6.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny agents and budgets (minutes)")
    parser.add_argument("--tasks", nargs="*", default=None, help=f"subset of {', '.join(TASKS)}")
    parser.add_argument("--agents", nargs="*", default=None, help="subset of agents.AGENTS")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (at least 3 to report)")
    parser.add_argument("--planner", default="cem", help="planner of agents that plan")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temp dir)")
    parser.add_argument(
        "--latency", action="store_true", help="only time aif planning (untrained, no training)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--precision", default="auto", help="--latency: auto | float32 | bfloat16 (imagination)"
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="--latency: aif overrides as train-agent's --set, e.g. candidates=200 "
        "policy_proposals=20",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.latency:
        latency_main(["preference", "efe", "reward"], args.precision, tuple(args.set))
        return
    mode = MODES["quick" if args.quick else "full"]
    tasks = args.tasks or list(QUICK_TASKS if args.quick else TASKS)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; valid: {', '.join(TASKS)}")
    names = args.agents or sorted(agents.AGENTS)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-agents-"))
    randoms = {
        (task, seed): random_baseline(task, seed, mode["eval_episodes"])
        for task in tasks
        for seed in range(args.seeds)
    }
    rows: list[dict] = []
    failures: list[dict] = []
    pairs = variants(names, failures)
    for task in tasks:
        for agent, objective in pairs:
            for seed in range(args.seeds):
                try:
                    r = run_one(task, agent, objective, seed, mode, out, args.planner)
                except Exception as e:  # one broken agent must not hide the others' numbers
                    error = f"{type(e).__name__}: {e}"
                    failures.append(
                        {"task": task, "agent": agent, "objective": objective, "seed": seed,
                         "error": error}
                    )  # fmt: skip
                    print(
                        f"# {task} {agent}:{objective} seed {seed}: FAILED {failures[-1]['error']}"
                    )
                    continue
                rows.append(r)
                print(
                    f"# {task} {agent}:{objective} seed {seed}: return {r['return']:.1f}, "
                    f"success {r['success']:.2f}, {r['act_ms']:.2f} ms/action, {r['seconds']} s",
                    flush=True,
                )
    summary = summarise(rows, randoms)
    print()
    print_table(summary, randoms)
    for f in failures:
        where = " ".join(str(f[k]) for k in ("task", "agent", "objective", "seed") if k in f)
        print(f"FAILED {where}: {f['error']}")
    random_rows = [{"task": t, "seed": s, **m} for (t, s), m in randoms.items()]
    print(
        json.dumps(
            {
                "bench": "agents",
                "mode": "quick" if args.quick else "full",
                "summary": summary,
                "random": random_rows,
                "rows": rows,
                "failures": failures,
            }
        )
    )


if __name__ == "__main__":
    main()
