"""Every generative family on the same data, one table: likelihood where the family has one,
and sample quality measured by a classifier trained on that data, beside real-vs-real.

    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_families.py
    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_families.py --steps 30

The same work as ``activegen compare-generative`` (``runs.compare_generative``): each model
trains through ``train-generative`` with its own default budget (or ``--steps``), is
evaluated on the test split and draws ``--n`` samples, scored against ``--n`` training
images (FID, KID, k-NN precision / recall, class histogram); the ``real data`` row scores
``--n`` test images the same way. The table also lands as table.md / table.csv; the last
line printed is JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from runs.compare_generative import FAMILY_MODELS, CompareGenerativeConfig, compare_generative


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(FAMILY_MODELS))
    parser.add_argument("--data", default="digits", help="digits | mnist (with --data-root)")
    parser.add_argument("--data-root", default=None, help="MNIST IDX folder")
    parser.add_argument("--steps", type=int, default=None, help="override every model's budget")
    parser.add_argument("--n", type=int, default=400, help="samples per metric (<= test size)")
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    cfg = CompareGenerativeConfig(
        data=args.data,
        data_root=Path(args.data_root) if args.data_root else None,
        models=",".join(args.models),
        steps=args.steps,
        n=args.n,
        out=Path(args.out),
        seed=args.seed,
        device=args.device,
        quiet=args.quiet,
    )
    folder = compare_generative(cfg)
    with (folder / "table.csv").open() as f:
        rows = list(csv.DictReader(f))
    print(json.dumps({"suite": "families", "data": args.data, "n": args.n, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
