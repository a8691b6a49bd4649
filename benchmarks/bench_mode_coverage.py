"""GAN mode coverage on the eight-gaussians toy: modes covered and high-quality share.

Trains each GAN through the command function of ``activegen train-generative`` with its
default budget, draws ``--n`` samples and scores them with
:func:`generative.metrics.mode_coverage` (a mode is covered when it holds at least 1% of
the samples within 3 standard deviations). Target: 8 of 8 modes and at least 90% of the
samples within 3 standard deviations. The same numbers for ``--n`` real draws are the
reference row. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from tables import table

from generative.datasets.toy import EIGHT_GAUSSIANS_STD, eight_gaussian_centers
from generative.metrics import mode_coverage
from runs.train_generative import TrainGenerativeConfig, load_trained, train_generative


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["dcgan", "wgan-gp"])
    parser.add_argument("--steps", type=int, default=None, help="override the default budget")
    parser.add_argument("--n", type=int, default=2000, help="samples scored per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: temp)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-modes-"))
    centers = eight_gaussian_centers()
    gen = torch.Generator().manual_seed(args.seed)
    mode = torch.randint(0, 8, (args.n,), generator=gen)
    real = centers[mode] + EIGHT_GAUSSIANS_STD * torch.randn(args.n, 2, generator=gen)
    rows = [{"model": "real data", **mode_coverage(real, centers, EIGHT_GAUSSIANS_STD)}]
    for name in args.models:
        cfg = TrainGenerativeConfig(
            model=name, data="8gaussians", steps=args.steps, seed=args.seed, out=out, quiet=True
        )
        run_dir = train_generative(cfg)
        _, model, _ = load_trained(run_dir, torch.device("cpu"))
        torch.manual_seed(args.seed)
        with torch.no_grad():
            samples = model.sample(args.n)
        rows.append({"model": name, **mode_coverage(samples, centers, EIGHT_GAUSSIANS_STD)})
    columns = [("model", "model", ""), ("modes covered", "modes_covered", ".0f"),
               ("of", "modes", ".0f"), ("within 3 sd", "high_quality", ".3f")]  # fmt: skip
    print(table(rows, columns))
    print(json.dumps({"benchmark": "mode_coverage", "n": args.n, "rows": rows}))


if __name__ == "__main__":
    main()
