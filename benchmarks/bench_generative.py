"""Generative benchmark: train every model of a suite with its default budget, print a table.

``--suite digits`` trains every registered model whose class lists ``"digits"`` in its
``BENCHMARKS`` (autoregressive, VAE, flows, ...) on scikit-learn's digits (intro_dgm split)
and reports test NLL in nats per image next to the anchors below. ``--suite text`` trains a
character transformer and a character LSTM on Tiny Shakespeare and reports validation
nats per character. Runs go through the same command functions as ``activegen
train-generative`` and ``activegen evaluate``. The last line printed is JSON.

    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_generative.py --suite digits
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from tables import table

from generative import MODELS
from runs.registry import resolve
from runs.train_generative import EvaluateConfig, TrainGenerativeConfig, evaluate, train_generative

REPO = Path(__file__).resolve().parents[1]
SHAKESPEARE = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare.txt"

# Tomczak's intro_dgm on the same split, nats per image.
ANCHORS = {"autoregressive": 89.0, "vae (neg. ELBO)": 101.0, "uniform": 64 * math.log(17)}

# Character models: sizes and budgets that fit 5 CPU minutes (one thread).
TEXT_RUNS: dict[str, dict] = {
    "transformer": {
        "set": ("width=128", "layers=4", "heads=4", "dropout=0.0"),
        "seq_len": 64,
        "batch_size": 32,
        "steps": 1200,
        "lr": 2e-3,
    },
    "lstm": {
        "set": ("hidden=256", "layers=2", "embed=32", "dropout=0.0"),
        "seq_len": 64,
        "batch_size": 32,
        "steps": 1500,
        "lr": 3e-3,
    },
}


def digits_models() -> list[str]:
    """Registered models whose class is benchmarked on digits."""
    return [
        n for n in MODELS if "digits" in getattr(resolve("generative model", n), "BENCHMARKS", ())
    ]


def run_one(cfg: TrainGenerativeConfig, val: bool) -> dict:
    """Train through the command function, optionally evaluate on val, return the summary row."""
    run_dir = train_generative(cfg)
    if val:
        evaluate(EvaluateConfig(run_dir, split="val", device=cfg.device, threads=cfg.threads))
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    return {"model": cfg.model, "data": cfg.data, "run_dir": str(run_dir), **metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("digits", "text", "all"), default="digits")
    parser.add_argument("--models", nargs="*", help="subset of the suite's models")
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--text", default=str(SHAKESPEARE), help="Tiny Shakespeare file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    common = {"out": Path(args.out), "seed": args.seed, "device": args.device, "quiet": args.quiet}
    result: dict = {"suite": args.suite}

    if args.suite in ("digits", "all"):
        names = [n for n in digits_models() if not args.models or n in args.models]
        rows = [
            run_one(TrainGenerativeConfig(model=n, data="digits", **common), val=False)
            for n in names
        ]
        print("\ndigits (intro_dgm split, test set of 447 images; nats per image)")
        print(
            table(
                rows,
                [
                    ("model", "model", ""),
                    ("params", "params", ".0f"),
                    ("train s", "train_seconds", ".0f"),
                    ("test NLL", "test/nll", ".2f"),
                    ("neg. ELBO", "test/neg_elbo", ".2f"),
                    ("bits/dim", "test/bpd", ".3f"),
                    ("samples/s", "samples_per_second", ".0f"),
                ],
            )
        )
        print("anchors: " + ", ".join(f"{k} {v:.1f}" for k, v in ANCHORS.items()))
        result["digits"] = rows

    if args.suite in ("text", "all"):
        rows = []
        for name, settings in TEXT_RUNS.items():
            if args.models and name not in args.models:
                continue
            cfg = TrainGenerativeConfig(
                model=name, data="text", data_root=args.text, eval_every=500, **settings, **common
            )
            rows.append(run_one(cfg, val=True))
        print("\nTiny Shakespeare (nats per character)")
        print(
            table(
                rows,
                [
                    ("model", "model", ""),
                    ("params", "params", ".0f"),
                    ("train s", "train_seconds", ".0f"),
                    ("val nats/char", "val/nats_per_dim", ".3f"),
                    ("test nats/char", "test/nats_per_dim", ".3f"),
                    ("samples/s", "samples_per_second", ".1f"),
                ],
            )
        )
        print("reference: nanoGPT 4 layers x 128, 2,000 iterations on a CPU: about 1.88")
        result["text"] = rows

    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
