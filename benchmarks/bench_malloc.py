"""World-model training step time with glibc's default malloc settings vs. with
:func:`runs.process.keep_freed_memory` (what every ``activegen`` command and study worker runs
with).

Each case is one RSSM update (``train_step``) on random 64x64 frames, timed in a fresh
child process per setting (mallopt changes a process for good), one torch thread; the
children alternate for ``--rounds`` rounds and the best time of each is kept. Prints a
table (ms per update, user and system CPU ms, minor page faults, peak memory) and the
speed-up, then one JSON line.

    .venv/bin/python benchmarks/bench_malloc.py --quick      # one small case, ~1 min
    .venv/bin/python benchmarks/bench_malloc.py              # CPU and default sizes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tables import table

# name -> (RSSMConfig overrides, chunk length); 16 chunks per update.
CPU_SIZES = {"channels": (16, 32, 64, 128), "deter": 128, "hidden": 128, "embed": 128}
CASES = {
    "cpu-sizes x16": (CPU_SIZES, 16),
    "cpu-sizes x50": (CPU_SIZES, 50),
    "default x50": ({}, 50),
}

CHILD = """
import json, resource, sys, time
import torch
from generative.base import DataSpec
from runs.process import keep_freed_memory
from world_models.replay import Chunk
from world_models.rssm import RSSM, RSSMConfig

sizes, length, keep, updates = json.loads(sys.argv[1])
applied = keep_freed_memory() if keep else False
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = RSSMConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()})
model = RSSM(cfg, DataSpec("image", (3, 64, 64), 256), action_dim=1)
opt = model.optimizers(6e-4)
b = 16
flags = torch.zeros(b, length, dtype=torch.bool)
batch = Chunk(torch.randint(0, 256, (b, length, 3, 64, 64), dtype=torch.uint8),
              torch.randn(b, length, 1), torch.ones(b, length), flags, flags, flags)
for _ in range(2):
    model.train_step(batch, opt, 100.0)
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(updates):
    model.train_step(batch, opt, 100.0)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "applied": applied,
    "ms": 1000 * seconds / updates,
    "user_ms": 1000 * (after.ru_utime - before.ru_utime) / updates,
    "sys_ms": 1000 * (after.ru_stime - before.ru_stime) / updates,
    "faults": (after.ru_minflt - before.ru_minflt) / updates,
    "peak_mb": after.ru_maxrss / 1024,
}))
"""


def measure(sizes: dict, length: int, keep: bool, updates: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([sizes, length, keep, updates])],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the smallest case, 1 round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--updates", type=int, default=5)
    args = parser.parse_args()
    names = list(CASES)[:1] if args.quick else list(CASES)
    rounds = 1 if args.quick else args.rounds
    rows = []
    for name in names:
        sizes, length = CASES[name]
        best: dict[bool, dict] = {}
        for r in range(rounds):
            for keep in (False, True) if r % 2 == 0 else (True, False):
                result = measure(sizes, length, keep, args.updates)
                if keep not in best or result["ms"] < best[keep]["ms"]:
                    best[keep] = result
        for keep in (False, True):
            rows.append(
                {
                    "case": name,
                    "malloc": "keep freed" if keep else "glibc default",
                    **best[keep],
                    "speedup": best[False]["ms"] / best[keep]["ms"],
                }
            )
    print(
        table(
            rows,
            [
                ("case", "case", ""),
                ("malloc", "malloc", ""),
                ("ms/update", "ms", ".0f"),
                ("user ms", "user_ms", ".0f"),
                ("sys ms", "sys_ms", ".0f"),
                ("faults", "faults", ".0f"),
                ("peak MB", "peak_mb", ".0f"),
                ("speed-up", "speedup", ".2f"),
            ],
        )
    )
    print(json.dumps({"benchmark": "malloc", "rows": rows}))


if __name__ == "__main__":
    main()
