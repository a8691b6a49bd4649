"""Every generative family on the same data, one table: likelihood where the family has one,
and sample quality measured by a classifier trained on that data, beside real-vs-real.

    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_families.py
    flock /tmp/activegen-cpu.lock .venv/bin/python benchmarks/bench_families.py --steps 30

Each model trains through the command function of ``activegen train-generative`` with its
own default budget (or ``--steps`` for a quick check) and is evaluated on the test split;
then it draws ``--n`` samples. FID and KID (torchmetrics, on the frozen classifier's
standardised features), k-NN precision / recall (k = 3) and the predicted-class histogram
compare those samples with ``--n`` training images; the ``real data`` row compares ``--n``
test images with the same training images: the floor every figure is read against. The
classifier is cached under ``<out>/classifiers``. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tables import table

from generative import MODELS
from generative.data import load_dataset
from generative.metrics import classifier_for, sample_quality
from runs.registry import resolve
from runs.run import select_device
from runs.train_generative import TrainGenerativeConfig, load_trained, train_generative

# One or more models per family; the GANs have no likelihood.
FAMILY_MODELS = (
    "gated-pixelcnn",
    "vae",
    "realnvp",
    "glow",
    "maf",
    "iaf",
    "ddpm",
    "dcgan",
    "wgan-gp",
)

# What the NLL column holds, by the package a model lives in.
LIKELIHOOD = {
    "autoregressive": "exact",
    "flows": "dequant. bound",
    "diffusion": "VLB bound",
    "vae": "IS estimate",
    "gan": "none",
}


def family(name: str) -> str:
    """The package of a registered model: ``autoregressive``, ``vae``, ``flows``, ..."""
    return resolve("generative model", name).__module__.split(".")[1]


def draw(model: torch.nn.Module, n: int, seed: int, chunk: int = 200) -> torch.Tensor:
    """``n`` samples at temperature 1, in chunks, with a fixed seed."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        return torch.cat([model.sample(min(chunk, n - i)).cpu() for i in range(0, n, chunk)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[m for m in FAMILY_MODELS if m in MODELS])
    parser.add_argument("--data", default="digits", help="digits | mnist (with --data-root)")
    parser.add_argument("--data-root", default=None, help="MNIST IDX folder")
    parser.add_argument("--steps", type=int, default=None, help="override every model's budget")
    parser.add_argument("--n", type=int, default=400, help="samples per metric (<= test size)")
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    data = load_dataset(args.data, seed=args.seed, data_root=args.data_root)
    classifier, accuracy = classifier_for(data, cache_dir=out / "classifiers")
    device = select_device(args.device)

    rows, real = [], {}
    for name in args.models:
        cfg = TrainGenerativeConfig(
            model=name,
            data=args.data,
            data_root=args.data_root,
            steps=args.steps,
            out=out,
            seed=args.seed,
            device=args.device,
            quiet=args.quiet,
        )
        run_dir = train_generative(cfg)
        summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
        _, model, _ = load_trained(run_dir, device)
        quality = sample_quality(draw(model, args.n, args.seed), data, classifier, n=args.n)
        real = {k.removesuffix("_real"): v for k, v in quality.items() if k.endswith("_real")}
        rows.append(
            {
                "model": name,
                "likelihood": LIKELIHOOD.get(family(name), "?"),
                "run_dir": str(run_dir),
                **summary,
                **{k: v for k, v in quality.items() if not k.endswith("_real")},
            }
        )

    columns = [
        ("model", "model", ""),
        ("params", "params", ".0f"),
        ("train s", "train_seconds", ".0f"),
        ("test NLL", "test/nll", ".2f"),
        ("bits/dim", "test/bpd", ".3f"),
        ("FID", "fid", ".2f"),
        ("KID", "kid", ".4f"),
        ("precision", "precision", ".3f"),
        ("recall", "recall", ".3f"),
        ("class H", "class_entropy", ".2f"),
        ("max class", "class_max_fraction", ".2f"),
        ("samples/s", "samples_per_second", ".0f"),
    ]
    print(
        f"\n{args.data}: {args.n} samples vs {args.n} training images (classifier test "
        f"accuracy {accuracy:.3f}); NLL in nats per image on the test split"
    )
    print(table([*rows, {"model": "real data (test vs train)", **real}], columns))
    print("NLL kinds: " + ", ".join(f"{r['model']} {r['likelihood']}" for r in rows))
    result = {
        "suite": "families",
        "data": args.data,
        "n": args.n,
        "classifier_accuracy": accuracy,
        "real": real,
        "models": rows,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
