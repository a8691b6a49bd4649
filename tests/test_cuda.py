"""``--device cuda`` through every command, where a CUDA GPU exists (skipped elsewhere).

Each test runs a smoke-sized command on the GPU, checks that it allocated GPU memory and
wrote finite results, and for the agents resumes the run (its checkpoint is loaded on the
CPU first, as ``--resume`` does) and films it with ``record``. On a GPU machine:
``.venv/bin/python -m pytest tests/test_cuda.py``.
"""

import json
import math

import pytest
import torch
from run_files import only_run_dir, read_metrics

import generative
import world_models
from runs import cli

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = ["--device", "cuda", "--quiet"]


@pytest.fixture(autouse=True)
def _gpu_memory_counted():
    torch.cuda.reset_peak_memory_stats()
    yield
    assert torch.cuda.max_memory_allocated() > 0, "nothing was put on the GPU"


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())["metrics"]


def _finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, int | float))


@pytest.mark.parametrize("model", sorted(generative.MODELS))
def test_generative_models_train_evaluate_and_sample(model, out_dir):
    args = ["--model", model, "--data", "digits", "--preset", "smoke", "--out", str(out_dir)]
    assert cli.main(["train-generative", *args, *CUDA]) == 0
    (run_dir,) = [p for p in out_dir.glob("generative/*/*") if p.is_dir()]
    assert _finite(_summary(run_dir))
    assert cli.main(["sample", str(run_dir), "--n", "4", "--device", "cuda"]) == 0


WORLD_MODELS = [(m, "state") for m in sorted(world_models.WORLD_MODELS)] + [("rssm", "pixels")]


@pytest.mark.parametrize(("model", "obs"), WORLD_MODELS)
def test_world_models_train_and_evaluate(model, obs, out_dir):
    args = ["--model", model, "--env", "pendulum", "--obs", obs, "--preset", "smoke"]
    assert cli.main(["train-world-model", *args, "--out", str(out_dir), *CUDA]) == 0
    (run_dir,) = sorted(out_dir.glob("world_model/*/*"))
    assert _finite(_summary(run_dir))
    assert cli.main(["evaluate", str(run_dir), "--device", "cuda"]) == 0


AGENTS = [
    ("aif", "efe", "cem", "state"),
    ("aif", "preference", "mppi", "state"),
    ("aif", "feef", "policy", "state"),
    ("aif", "reward", "policy", "pixels"),
    ("mbrl", "reward", "cem", "state"),
    ("sac", "reward", "cem", "state"),
    ("sac", "reward", "cem", "pixels"),
    ("td3", "reward", "cem", "state"),
    ("ppo", "reward", "cem", "state"),
]


@pytest.mark.video
@pytest.mark.parametrize(("agent", "objective", "planner", "obs"), AGENTS)
def test_agents_train_resume_and_record(agent, objective, planner, obs, out_dir):
    args = ["train-agent", "--agent", agent, "--env", "pendulum", "--obs", obs]
    if agent in ("aif", "mbrl"):
        args += ["--objective", objective, "--planner", planner]
    args += ["--preset", "smoke", "--steps", "200", "--eval-every", "100", "--eval-episodes", "1"]
    assert cli.main([*args, "--out", str(out_dir), *CUDA]) == 0
    run_dir = only_run_dir(out_dir)
    evals = [r["eval/return"] for r in read_metrics(run_dir) if "eval/return" in r]
    assert len(evals) == 2 and all(math.isfinite(r) for r in evals)
    more = ["train-agent", "--resume", str(run_dir), "--steps", "300", "--quiet"]
    assert cli.main(more) == 0
    assert [r["step"] for r in read_metrics(run_dir) if "eval/return" in r][-1] == 300
    record = ["record", "--run", str(run_dir), "--episodes", "1", "--max-steps", "20"]
    assert cli.main([*record, "--out", str(out_dir / "videos"), *CUDA]) == 0
    assert list((out_dir / "videos").rglob("*.mp4"))
