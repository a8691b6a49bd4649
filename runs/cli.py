"""The ``activegen`` command line: one subcommand per job, each configured by a dataclass.

Commands are registered lazily like every other registry (``"module:attr"`` strings), so
``activegen list`` imports neither MuJoCo nor JAX. User mistakes (unknown names, invalid
values, missing files) print one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

import tyro

from runs import config as config_lib
from runs.errors import UserError
from runs.loop import TrainingError
from runs.process import keep_freed_memory
from runs.registry import check_name, describe_all, import_string

# name -> (config dataclass, function taking that config, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": (
        "runs.cli:ListConfig",
        "runs.cli:list_registered",
        "List every registered task, agent, world model and generative model.",
    ),
    "train-generative": (
        "runs.train_generative:TrainGenerativeConfig",
        "runs.train_generative:train_generative",
        "Train a generative model on a dataset and evaluate it on the test split.",
    ),
    "train-world-model": (
        "runs.train_world_model:TrainWorldModelConfig",
        "runs.train_world_model:train_world_model",
        "Collect experience in a task, train a world model on it and evaluate its predictions.",
    ),
    "train-agent": (
        "runs.train_agent:TrainAgentConfig",
        "runs.train_agent:train_agent",
        "Train an agent in a task with periodic evaluations (SB3 baselines, active inference).",
    ),
    "evaluate": (
        "runs.train_generative:EvaluateConfig",
        "runs.train_generative:evaluate",
        "Recompute a generative run's test metrics from its checkpoint into summary.json.",
    ),
    "sample": (
        "runs.train_generative:SampleConfig",
        "runs.train_generative:sample",
        "Draw samples (an image grid, or text after --prompt) from a trained generative run.",
    ),
    "compare-generative": (
        "runs.compare_generative:CompareGenerativeConfig",
        "runs.compare_generative:compare_generative",
        "Train (or load) one generative model per family on the same data; one table.",
    ),
    "compare": (
        "runs.study:CompareConfig",
        "runs.study:compare",
        "Train agents x tasks x seeds as one resumable study; write tables, plots and videos.",
    ),
    "record": (
        "runs.record:RecordConfig",
        "runs.record:record",
        "Record episodes of a policy in a task as mp4 and GIF videos.",
    ),
    "demo": (
        "runs.demo:DemoConfig",
        "runs.demo:demo",
        "A small preferred-state vs reward study on inverted-pendulum (what `make demo` runs).",
    ),
}


@dataclasses.dataclass(frozen=True)
class ListConfig:
    """List every registered task, agent, world model and generative model."""


def list_registered(cfg: ListConfig) -> None:
    for kind, entries in describe_all().items():
        print(f"{kind}s:")
        if not entries:
            print("  (none registered yet)")
        width = max((len(n) for n in entries), default=0)
        for name, description in entries.items():
            print(f"  {name:<{width}}  {description}")


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: activegen COMMAND [OPTIONS]   (activegen COMMAND --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {n:<{width}}  {h}" for n, (_, _, h) in COMMANDS.items()]
    return "\n".join(lines)


def _saved_default(cls: type, args: Sequence[str]) -> object:
    """The config to start from: a run's saved config for --resume, a file for --config."""
    if not issubclass(cls, config_lib.RunOptions):
        return tyro.MISSING_NONPROP
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--resume")
    known, _ = pre.parse_known_args(list(args))
    if known.resume:
        from runs.run import require_run_dir

        run_dir = require_run_dir(known.resume)
        return config_lib.replace(
            config_lib.load_yaml(cls, run_dir / "config.yaml"), resume=run_dir
        )
    if known.config:
        return config_lib.load_yaml(cls, known.config)
    return tyro.MISSING_NONPROP


def _merge_repeated_set(args: Sequence[str]) -> list[str]:
    """Every ``--set`` occurrence's values under the first one: ``--set a=1 --set b=2`` means
    both (tyro would keep only the last, silently dropping ``a=1``)."""
    values: list[str] = []
    rest: list[str] = []
    first = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--set" or arg.startswith("--set="):
            if first is None:
                first = len(rest)
            if arg.startswith("--set="):
                values.append(arg.partition("=")[2])
            i += 1
            while i < len(args) and not args[i].startswith("--"):
                values.append(args[i])
                i += 1
            continue
        rest.append(arg)
        i += 1
    if first is None:
        return rest
    return [*rest[:first], "--set", *values, *rest[first:]]


def parse(name: str, args: Sequence[str]) -> tuple[object, object]:
    """Resolve command ``name`` and parse ``args`` into its config; return (function, config)."""
    cfg_target, fn_target, help_text = COMMANDS[check_name("command", name, COMMANDS)]
    cls = import_string(cfg_target)
    args = _merge_repeated_set(args)
    default = _saved_default(cls, args)
    cfg = tyro.cli(
        cls, args=list(args), default=default, prog=f"activegen {name}", description=help_text
    )
    return import_string(fn_target), cfg


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name = argv[0]
    keep_freed_memory()
    try:
        fn, cfg = parse(name, argv[1:])
        fn(cfg)
    except UserError as e:
        print(f"activegen {name}: error: {e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"activegen {name}: training stopped: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
