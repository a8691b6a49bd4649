"""GAN mode coverage on the eight-gaussians toy: modes covered and high-quality share.

Trains each GAN through the command function of ``activegen train-generative`` with its
budget for vector data (the class's ``TRAIN_BY_KIND["vector"]``: learning rate, batch size,
steps), draws ``--n`` samples and scores them with
:func:`generative.metrics.mode_coverage` (a mode is covered when it holds at least 1% of
the samples within 3 standard deviations). Target: 8 of 8 modes and at least 90% of the
samples within 3 standard deviations. Beside them the Frechet distance of the raw
coordinates to ``--n`` training points (``generative.metrics.sample_quality``). The same
numbers for ``--n`` real draws (FID: the test split) are the reference row. Prints a
table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from tables import table

from generative.data import load_dataset
from generative.datasets.toy import EIGHT_GAUSSIANS_STD, eight_gaussian_centers
from generative.metrics import mode_coverage, sample_quality
from runs.registry import resolve
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
    data = load_dataset("8gaussians", seed=args.seed)
    real_fid = sample_quality(data.test, data, n=args.n)["fid_real"]
    rows = [
        {"model": "real data", **mode_coverage(real, centers, EIGHT_GAUSSIANS_STD), "fid": real_fid}
    ]
    for name in args.models:
        budget = {
            **getattr(resolve("generative model", name), "TRAIN_BY_KIND", {}).get("vector", {})
        }
        if args.steps is not None:
            budget["steps"] = args.steps
        cfg = TrainGenerativeConfig(
            model=name, data="8gaussians", seed=args.seed, out=out, quiet=True, **budget
        )
        run_dir = train_generative(cfg)
        seconds = json.loads((run_dir / "summary.json").read_text())["metrics"]["train_seconds"]
        _, model, _ = load_trained(run_dir, torch.device("cpu"))
        torch.manual_seed(args.seed)
        with torch.no_grad():
            samples = model.sample(args.n)
        coverage = mode_coverage(samples, centers, EIGHT_GAUSSIANS_STD)
        fid = sample_quality(samples, data, n=args.n)["fid"]
        rows.append({"model": name, **coverage, "fid": fid, "train_seconds": seconds, **budget})
    columns = [("model", "model", ""), ("modes covered", "modes_covered", ".0f"),
               ("of", "modes", ".0f"), ("within 3 sd", "high_quality", ".3f"),
               ("FID", "fid", ".4f"), ("train s", "train_seconds", ".0f")]  # fmt: skip
    print(table(rows, columns))
    print(json.dumps({"benchmark": "mode_coverage", "n": args.n, "rows": rows}))


if __name__ == "__main__":
    main()
