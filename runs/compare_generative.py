"""``activegen compare-generative``: one model per family on the same data, one table.

``activegen compare-generative --data digits`` trains every model of ``--models`` through
``train-generative`` with its own default budget (``--steps`` overrides it; ``--runs``
loads finished runs instead), evaluates it on the test split, draws ``--n`` samples and
scores them against ``--n`` training images with a classifier trained on the data (frozen,
cached under ``<out>/classifiers``; nothing is downloaded): FID and KID (torchmetrics on its
features), k-NN precision / recall and the predicted-class histogram. The ``real data`` row
scores ``--n`` test images the same way: the floor each figure is read against.

``<out>/compare-generative/<data>/<stamp>/`` gets ``table.md`` and ``table.csv`` (NLL or
bound where the family has one, the sample metrics, sampling seconds per 1,000 samples,
trainable parameters), ``samples/<model>.png`` and ``samples.png`` (all grids side by side).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import torch

from generative import MODELS
from runs.config import RunOptions, check
from runs.errors import UserError
from runs.registry import check_name, resolve

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
SUMMARY_KEYS = ("params", "train_seconds", "test/nll", "test/bpd")
# What the NLL column holds, by the package a model lives in.
LIKELIHOOD = {
    "autoregressive": "exact",
    "flows": "dequant. bound",
    "diffusion": "VLB bound",
    "vae": "IS estimate",
    "gan": "none",
}
# (header, key, format) of the table
COLUMNS = (
    ("model", "model", ""),
    ("NLL kind", "likelihood", ""),
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
    ("s / 1k samples", "sample_seconds_per_1k", ".2f"),
)


@dataclasses.dataclass(frozen=True)
class CompareGenerativeConfig(RunOptions):
    """Train (or load) one model per family on the same data and compare them in one table."""

    data: str = "digits"
    """Image dataset: digits | mnist (with --data-root)."""
    data_root: Path | None = None
    """Folder of the MNIST IDX files."""
    models: str = ",".join(FAMILY_MODELS)
    """Comma-separated registered generative models to train."""
    runs: tuple[Path, ...] = ()
    """Finished train-generative run folders to load instead of training (--models ignored)."""
    steps: int | None = None
    """Training steps for every model (default: each model's own budget)."""
    n: int = 400
    """Samples per metric, and training / test images they are compared with."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n >= 10, "n", self.n, ">= 10")
        check(self.steps is None or self.steps > 0, "steps", self.steps, "> 0")
        for name in self.model_names:
            check_name("generative model", name, MODELS)

    @property
    def model_names(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]


def family(name: str) -> str:
    """The package of a registered model: ``autoregressive``, ``vae``, ``flows``, ..."""
    return resolve("generative model", name).__module__.split(".")[1]


def draw(model: torch.nn.Module, n: int, seed: int, chunk: int = 200) -> tuple[torch.Tensor, float]:
    """``n`` samples at temperature 1 (fixed seed, in chunks) and the seconds they took."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        samples = torch.cat([model.sample(min(chunk, n - i)).cpu() for i in range(0, n, chunk)])
    return samples, time.perf_counter() - start


def trained_runs(cfg: CompareGenerativeConfig) -> list[Path]:
    """The run folders to compare: ``--runs``, or each model trained now."""
    from runs.train_generative import TrainGenerativeConfig, train_generative

    if cfg.runs:
        return list(cfg.runs)
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(RunOptions)}
    options["out"] = Path(cfg.out)
    return [
        train_generative(
            TrainGenerativeConfig(
                **options, model=name, data=cfg.data, data_root=cfg.data_root, steps=cfg.steps
            )
        )
        for name in cfg.model_names
    ]


def compare_generative(cfg: CompareGenerativeConfig) -> Path:
    """Train or load, evaluate, sample and score every model; write the table and figures."""
    from generative.data import DataError, load_dataset
    from generative.metrics import classifier_for, sample_quality
    from runs.images import sample_picture
    from runs.run import seed_everything, select_device
    from runs.train_generative import load_trained

    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    try:
        data = load_dataset(cfg.data, seed=cfg.seed, data_root=cfg.data_root)
    except DataError as e:
        raise UserError(str(e)) from None
    if data.spec.kind != "image" or len(data.test) < cfg.n or len(data.train) < cfg.n:
        raise UserError(
            f"compare-generative needs image data with at least n={cfg.n} train and test "
            f"images; {cfg.data!r} is {data.spec.kind} with {len(data.test)} test images"
        )
    classifier, accuracy = classifier_for(data, cache_dir=Path(cfg.out) / "classifiers")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(cfg.out) / "compare-generative" / cfg.data / stamp
    (folder / "samples").mkdir(parents=True)

    rows, real, pictures = [], {}, {}
    for run_dir in trained_runs(cfg):
        run_cfg, model, _ = load_trained(run_dir, device)
        if run_cfg.data != cfg.data:
            raise UserError(f"{run_dir} was trained on {run_cfg.data!r}, not {cfg.data!r}")
        summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
        samples, seconds = draw(model, cfg.n, cfg.seed)
        quality = sample_quality(samples, data, classifier, n=cfg.n, seed=cfg.seed)
        real = {k.removesuffix("_real"): v for k, v in quality.items() if k.endswith("_real")}
        name = run_cfg.model
        pictures[name] = sample_picture(data.spec, samples[:64], nrow=8)
        _save_png(pictures[name], folder / "samples" / f"{name}.png")
        rows.append(
            {
                "model": name,
                "likelihood": LIKELIHOOD.get(family(name), "?"),
                **{k: summary[k] for k in SUMMARY_KEYS if k in summary},
                **{k: v for k, v in quality.items() if not k.endswith("_real")},
                "sample_seconds_per_1k": 1000 * seconds / cfg.n,
                "run_dir": str(run_dir),
            }
        )
    rows.append({"model": "real data (test vs train)", **real})
    write_tables(folder, rows, cfg, accuracy)
    combined_figure(folder / "samples.png", pictures)
    print((folder / "table.md").read_text())
    print(f"comparison folder: {folder}")
    return folder


def _save_png(image: Any, path: Path) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, image)


def write_tables(
    folder: Path, rows: list[dict[str, Any]], cfg: CompareGenerativeConfig, accuracy: float
) -> None:
    """``table.csv`` (every value, full precision) and ``table.md`` (the columns, rounded)."""
    keys = [key for _, key, _ in COLUMNS] + ["run_dir"]
    with (folder / "table.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        return "–" if value is None else format(value, fmt)

    lines = [
        f"# {cfg.data}: one model per family",
        "",
        f"{cfg.n} samples (seed {cfg.seed}) against {cfg.n} training images, in the features "
        f"of a classifier trained on the data (test accuracy {accuracy:.3f}); NLL in nats per "
        "image on the test split (its kind per model); `real data` scores test images the "
        "same way.",
        "",
        "| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(cell(r, k, f) for _, k, f in COLUMNS) + " |" for r in rows]
    lines += ["", "![samples](samples.png)", ""]
    (folder / "table.md").write_text("\n".join(lines))


def combined_figure(path: Path, pictures: dict[str, Any]) -> None:
    """Every model's sample grid side by side, titled by model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(len(pictures), 1)
    cols = min(count, 5)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, picture) in zip(axes.flat, pictures.items(), strict=False):
        ax.imshow(picture)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
