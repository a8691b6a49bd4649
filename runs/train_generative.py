"""Train, evaluate and sample any registered generative model on any registered dataset.

``activegen train-generative --model NAME --data NAME`` trains with :func:`runs.loop.train_loop`
in a run folder under ``<out>/generative/<model>-<data>/``; ``activegen evaluate RUN_DIR``
recomputes the test metrics from the checkpoint into ``summary.json``; ``activegen sample
RUN_DIR`` draws a grid of images (or text, with ``--prompt``) into ``RUN_DIR/samples/``.

A model's default training budget is its class attribute ``TRAIN`` (any of ``steps``,
``batch_size``, ``lr``, ``eval_every``), falling back to :data:`DEFAULT_BUDGET`; the
``smoke`` preset uses the model's ``SMOKE`` config overrides and :data:`SMOKE_BUDGET`.
A model class lists the datasets its benchmark runs on in ``BENCHMARKS`` (e.g.
``("digits",)``); ``benchmarks/bench_generative.py`` trains every model tagged so.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import tyro

from generative import MODELS
from generative.base import DataSpec, GenerativeModel
from generative.data import BINARIZE, DATASETS, DataError, Dataset, load_dataset
from generative.evaluation import (
    DEFAULT_IMPORTANCE_SAMPLES,
    is_estimate,
    likelihood_metrics,
    negative_elbo,
    negative_log_likelihood,
    reconstructions,
    timed_samples,
    trainable_parameters,
)
from runs import config as config_lib
from runs.checkpoint import load_into
from runs.config import RunOptions, check, check_choice, check_positive
from runs.errors import ConfigError, UserError
from runs.images import make_grid, sample_picture
from runs.loop import train_loop
from runs.registry import check_name, resolve
from runs.run import Run, load_trained_run, seed_everything, select_device

PRESETS = ("default", "smoke")
DEFAULT_BUDGET = {"steps": 5000, "batch_size": 64, "lr": 1e-3}
SMOKE_BUDGET = {"steps": 20, "batch_size": 16}
SMOKE_EVAL = {"eval_samples": 8, "eval_limit": 64, "n_samples": 16}
EVAL_DEFAULTS = {
    "eval_samples": DEFAULT_IMPORTANCE_SAMPLES,
    "eval_limit": 0,
    "n_samples": 64,
    "eval_every": 500,
}
TEXT_SAMPLES = 4  # sequences written to samples/ at the end of a text run


@dataclasses.dataclass(frozen=True)
class TrainGenerativeConfig(RunOptions):
    """Train a generative model on a dataset; evaluate it on the test split at the end."""

    model: str = "gated-pixelcnn"
    """Registered generative model (activegen list)."""
    data: str = "digits"
    """Registered dataset: digits, mnist, sprites, moving-sprites, text, signals, moons, ..."""
    preset: str = "default"
    """default | smoke (the model's SMOKE sizes and a budget of a few seconds)."""
    prior: str | None = None
    """VAE family: the prior over latents, standard | mog | vamp | flow | diffusion (the
    same as --set prior=NAME)."""
    set: tuple[str, ...] = ()
    """Model hyper-parameter overrides as key=value (values read as YAML), e.g. layers=4."""
    steps: int | None = None
    """Optimisation steps (default: the model's own budget)."""
    batch_size: int | None = None
    """Training batch size (default: the model's own)."""
    lr: float | None = None
    """Learning rate (default: the model's own)."""
    log_every: int = 50
    """Steps between training-metric log lines."""
    eval_every: int | None = None
    """Steps between validation evaluations (0: never; default 500, smoke: once at the end)."""
    checkpoint_every: int = 500
    """Steps between checkpoints (one is always written at the end)."""
    select_best: bool = True
    """Report test metrics of the weights with the best validation score (early stopping)."""
    data_root: str | None = None
    """Folder or file holding the data (MNIST IDX folder, text file); unused by built-in data."""
    binarize: str = "none"
    """Image binarisation: none | static (one fixed draw) | dynamic (redrawn every batch)."""
    seq_len: int | None = None
    """Sequence length for text and signals (default: the dataset's own)."""
    data_size: int | None = None
    """Training-set size for generated data (toy densities, sprites; default: the dataset's)."""
    eval_samples: int | None = None
    """Importance samples K for models whose log-likelihood is an estimate (default 1000)."""
    eval_batch_size: int = 100
    """Batch size of evaluation passes."""
    eval_limit: int | None = None
    """Evaluate on at most this many examples per split (0: all; smoke: 64)."""
    n_samples: int | None = None
    """Samples drawn into samples/ at the end (default 64; smoke: 16)."""
    temperature: float = 1.0
    """Sampling temperature of the end-of-run samples."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_name("generative model", self.model, MODELS)
        check_name("dataset", self.data, DATASETS)
        check_choice("preset", self.preset, PRESETS)
        check_choice("binarize", self.binarize, BINARIZE)
        if self.prior is not None:
            from generative.vae.priors import PRIORS

            check_name("prior", self.prior, PRIORS)
        for item in self.set:
            check("=" in item and item.split("=", 1)[0].strip() != "", "set", item, "key=value")
        check_positive(self, "log_every", "checkpoint_every", "eval_batch_size", "temperature")
        for name in ("steps", "batch_size", "lr", "seq_len", "data_size", "eval_samples"):
            value = getattr(self, name)
            check(value is None or value > 0, name, value, "> 0")
        for name in ("eval_every", "eval_limit", "n_samples"):
            value = getattr(self, name)
            check(value is None or value >= 0, name, value, ">= 0")


def resolve_defaults(cfg: TrainGenerativeConfig, kind: str) -> TrainGenerativeConfig:
    """Fill the unset fields from the preset and the model's budget for data of ``kind``
    (``TRAIN``, then ``TRAIN_BY_KIND[kind]`` where a model has one, e.g. GANs on 2-D
    vectors); set fields are kept."""
    model_cls = resolve("generative model", cfg.model)
    by_kind = getattr(model_cls, "TRAIN_BY_KIND", {}).get(kind, {})
    defaults = {**DEFAULT_BUDGET, **EVAL_DEFAULTS, **getattr(model_cls, "TRAIN", {}), **by_kind}
    if cfg.preset == "smoke":
        defaults.update(SMOKE_BUDGET, **SMOKE_EVAL)
    changes = {k: v for k, v in defaults.items() if getattr(cfg, k) is None}
    if cfg.preset == "smoke" and cfg.eval_every is None:
        changes["eval_every"] = changes.get("steps", cfg.steps)
    return config_lib.replace(cfg, **changes)


def model_config(cfg: TrainGenerativeConfig) -> Any:
    """The model's ``Config``: defaults, then the preset's overrides, then ``--set``."""
    model_cls = resolve("generative model", cfg.model)
    values: dict[str, Any] = dict(model_cls.SMOKE) if cfg.preset == "smoke" else {}
    config_lib.merge(values, config_lib.parse_overrides(cfg.set))
    if cfg.prior is not None:
        fields = {f.name for f in dataclasses.fields(model_cls.Config)}
        check("prior" in fields, "prior", cfg.prior, f"unset for {cfg.model!r} (VAE models only)")
        check("prior" not in values, "prior", cfg.prior, "given once, not also in --set")
        values["prior"] = cfg.prior
    return config_lib.component_config(model_cls.Config, values, cfg.model)


def build_model(cfg: TrainGenerativeConfig, spec: DataSpec) -> GenerativeModel:
    """Instantiate the configured model for data shaped by ``spec``."""
    model_cls = resolve("generative model", cfg.model)
    try:
        return model_cls(model_config(cfg), spec)
    except DataError as e:
        raise ConfigError(f"model {cfg.model!r} cannot model data {cfg.data!r}: {e}") from None


def dataset_for(cfg: TrainGenerativeConfig) -> Dataset:
    """Load the configured dataset; data problems become one-line user errors."""
    options: dict[str, Any] = {}
    if cfg.binarize != "none":
        options["binarize"] = cfg.binarize
    if cfg.seq_len is not None:
        options["seq_len"] = cfg.seq_len
    if cfg.data_size is not None:
        options["n"] = cfg.data_size
    try:
        data = load_dataset(cfg.data, seed=cfg.seed, data_root=cfg.data_root, **options)
    except DataError as e:
        raise UserError(str(e)) from None
    if "note" in data.meta:
        print(f"note: {data.meta['note']}")
    return data


class RunInfo:
    """What a checkpoint needs besides weights to rebuild and use the model without the data."""

    def __init__(self, spec: DataSpec, meta: dict[str, Any], model_cfg: Any):
        self.spec = spec
        self.vocab: str | None = meta.get("vocab")
        self.model_cfg = model_cfg

    def state_dict(self) -> dict[str, Any]:
        spec = {"kind": self.spec.kind, "shape": list(self.spec.shape), "levels": self.spec.levels}
        return {
            "spec": spec,
            "vocab": self.vocab,
            "model_config": config_lib.to_dict(self.model_cfg),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["spec"]["shape"] != list(self.spec.shape):
            raise UserError(f"checkpoint was trained on data shaped {state['spec']['shape']}")


class BestWeights:
    """The model weights with the lowest validation score so far (kept in the checkpoint)."""

    def __init__(self) -> None:
        self.value = float("inf")
        self.step = 0
        self.weights: dict[str, torch.Tensor] = {}

    def offer(self, value: float, step: int, model: torch.nn.Module) -> None:
        if value < self.value:
            self.value, self.step = value, step
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "step": self.step, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value, self.step = float(state["value"]), int(state["step"])
        self.weights = dict(state["weights"])


def validation_metrics(
    model: GenerativeModel, data: Dataset, cfg: TrainGenerativeConfig
) -> dict[str, float]:
    """Cheap validation numbers: ``val/nll`` for exact models, ``val/neg_elbo`` for estimates."""
    passes = data.batches("val", cfg.eval_batch_size, cfg.eval_limit or 0)
    dims = data.spec.dims
    if is_estimate(model):
        value = negative_elbo(model, passes)
        return {"val/neg_elbo": value, "val/neg_elbo_per_dim": value / dims}
    try:
        value = negative_log_likelihood(model, passes)
    except NotImplementedError:
        return {}
    return {"val/nll": value, "val/nats_per_dim": value / dims}


def test_metrics(
    model: GenerativeModel, data: Dataset, cfg: TrainGenerativeConfig, split: str = "test"
) -> dict[str, float]:
    """The reported metrics of ``split`` (nll, nats_per_dim, bpd, neg_elbo where defined)."""
    return likelihood_metrics(
        model,
        lambda: data.batches(split, cfg.eval_batch_size, cfg.eval_limit or 0),
        data.spec.dims,
        num_samples=cfg.eval_samples or DEFAULT_IMPORTANCE_SAMPLES,
        prefix=f"{split}/",
    )


def train_generative(cfg: TrainGenerativeConfig) -> Path:
    """Train ``cfg.model`` on ``cfg.data``; return the run folder."""
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    data = dataset_for(cfg)
    cfg = resolve_defaults(cfg, data.spec.kind)
    model = build_model(cfg, data.spec).to(device)
    data = data.to(device)
    optimizers = model.optimizers(cfg.lr)
    info, best = RunInfo(data.spec, data.meta, model.cfg), BestWeights()
    run = Run.open(cfg, "generative", f"{cfg.model}-{cfg.data}")

    def step_fn(step: int) -> dict[str, float]:
        metrics = model.train_step(data.batch("train", cfg.batch_size), optimizers)
        return {f"train/{k}": v for k, v in metrics.items()}

    def eval_fn(step: int) -> dict[str, float]:
        metrics = validation_metrics(model, data, cfg)
        score = metrics.get("val/nll", metrics.get("val/neg_elbo"))
        if score is not None:
            best.offer(score, step, model)
        return metrics

    modules = {"model": model, **optimizers, "best": best, "info": info}
    start = time.perf_counter()
    last = train_loop(
        run,
        modules,
        step_fn,
        cfg.steps,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every or 0,
        quiet=cfg.quiet,
        desc=f"{cfg.model} on {cfg.data}",
    )
    train_seconds = time.perf_counter() - start
    if cfg.select_best and best.weights:
        model.load_state_dict(best.weights)
        last["best_step"] = best.step
        last["best_val"] = best.value
    final = {**last, **test_metrics(model, data, cfg)}
    final.update(write_samples(run, model, data, cfg, cfg.steps))
    final["params"] = trainable_parameters(model)
    final["train_seconds"] = train_seconds
    run.log({k: v for k, v in final.items() if k.startswith("test/")}, cfg.steps)
    return run.finish(final, cfg.steps)


def write_samples(
    run: Run, model: GenerativeModel, data: Dataset, cfg: TrainGenerativeConfig, step: int
) -> dict[str, float]:
    """Samples (and reconstructions) into ``samples/``; returns ``samples_per_second``."""
    n = cfg.n_samples if cfg.n_samples is not None else EVAL_DEFAULTS["n_samples"]
    if n == 0:
        return {}
    samples, rate = timed_samples(model, n, cfg.temperature)
    picture = sample_picture(data.spec, samples)
    if picture is not None:
        run.log_image("samples", picture, step)
    elif "vocab" in data.meta:
        from generative.datasets.text import decode

        texts = [decode(s, data.meta["vocab"]) for s in samples[:TEXT_SAMPLES].cpu()]
        run.log_text("samples", "\n\n----------\n\n".join(texts), step)
    if data.spec.kind == "image":
        pairs = reconstructions(model, next(data.batches("test", max(1, n // 2))))
        if pairs is not None:
            run.log_image("reconstructions", make_grid(pairs, data.spec.levels, nrow=8), step)
        write_latent_grids(run, model, next(data.batches("test", LATENT_GRID_EXAMPLES)), step)
    return {"samples_per_second": rate}


LATENT_GRID_EXAMPLES = 16  # test images behind the traversal and interpolation grids


def write_latent_grids(run: Run, model: GenerativeModel, x: torch.Tensor, step: int) -> None:
    """Latent traversals and interpolations of models that have them (VAEs) into ``samples/``.

    ``model.traverse(x)`` and ``model.interpolate(start, end)`` return image grids
    ``(rows, columns, C, H, W)`` in [0, 1]; the interpolations join the first half of ``x``
    to the second.
    """
    grids: dict[str, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if callable(getattr(model, "traverse", None)):
                grids["traversals"] = model.traverse(x)
            half = x.shape[0] // 2
            if callable(getattr(model, "interpolate", None)) and half > 0:
                grids["interpolations"] = model.interpolate(x[:half], x[half : 2 * half])
    finally:
        model.train(was_training)
    for tag, grid in grids.items():
        run.log_image(tag, make_grid(grid.flatten(0, 1), None, nrow=grid.shape[1]), step)


# -- evaluate and sample an existing run ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Recompute a run's test metrics from its checkpoint into summary.json."""

    run_dir: tyro.conf.Positional[Path]
    """The run folder (holding config.yaml and checkpoints/last.pt)."""
    split: str = "test"
    """Split to evaluate: test | val | train."""
    eval_samples: int | None = None
    """Importance samples K for estimated log-likelihoods (default: the run's, 1000)."""
    eval_limit: int | None = None
    """At most this many examples (0: all; default: the run's)."""
    device: str = "auto"
    """auto | cpu | cuda."""
    threads: int = 1
    """torch threads."""

    def __post_init__(self) -> None:
        check_choice("split", self.split, ("train", "val", "test"))
        check_choice("device", self.device, config_lib.DEVICES)
        check(
            self.eval_samples is None or self.eval_samples > 0,
            "eval_samples",
            self.eval_samples,
            "> 0",
        )
        check(
            self.eval_limit is None or self.eval_limit >= 0, "eval_limit", self.eval_limit, ">= 0"
        )
        check(self.threads >= 1, "threads", self.threads, ">= 1")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """Draw samples from a trained run: an image grid, or text (optionally after --prompt)."""

    run_dir: tyro.conf.Positional[Path]
    """The run folder (holding config.yaml and checkpoints/last.pt)."""
    n: int = 64
    """Number of samples (text: sequences)."""
    temperature: float = 1.0
    """Divides the logits: < 1 sharper, > 1 more diverse."""
    prompt: str | None = None
    """Text models: continue this text, e.g. "ROMEO:"."""
    length: int = 500
    """Text models: characters to generate after the prompt."""
    seed: int = 0
    """Seed of the sampling noise."""
    device: str = "auto"
    """auto | cpu | cuda."""
    threads: int = 1
    """torch threads."""

    def __post_init__(self) -> None:
        check_positive(self, "n", "temperature", "length", "threads")
        check(self.seed >= 0, "seed", self.seed, ">= 0")
        check_choice("device", self.device, config_lib.DEVICES)


def load_trained(
    run_dir: Path, device: torch.device
) -> tuple[TrainGenerativeConfig, GenerativeModel, dict[str, Any]]:
    """The run's config, its model with the reported weights (best or last), the checkpoint."""
    cfg, state, path = load_trained_run(run_dir, TrainGenerativeConfig, device)
    info = state["info"]
    spec = DataSpec.from_dict(info["spec"])
    model_cls = resolve("generative model", cfg.model)
    model_cfg = config_lib.from_dict(model_cls.Config, info["model_config"], where=str(path))
    model = model_cls(model_cfg, spec)
    best = state.get("best", {}).get("weights")
    load_into(model, best if cfg.select_best and best else state["model"], path)
    return cfg, model.to(device).eval(), state


def evaluate(cfg: EvaluateConfig) -> Path:
    """Recompute ``<split>/...`` metrics of a run and merge them into its ``summary.json``."""
    from runs.train_world_model import evaluate_world_model, is_world_model_run

    if is_world_model_run(cfg.run_dir):  # one evaluate command for every kind of run
        return evaluate_world_model(cfg)
    torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    train_cfg, model, state = load_trained(cfg.run_dir, device)
    overrides = {k: getattr(cfg, k) for k in ("eval_samples", "eval_limit")}
    train_cfg = config_lib.replace(
        train_cfg, **{k: v for k, v in overrides.items() if v is not None}
    )
    seed_everything(train_cfg.seed)
    data = dataset_for(train_cfg).to(device)
    metrics = test_metrics(model, data, train_cfg, cfg.split)
    for name, value in metrics.items():
        print(f"{name:<20} {value:.4f}")
    step = int(state["step"])
    summary_path = Path(cfg.run_dir) / "summary.json"
    previous = json.loads(summary_path.read_text())["metrics"] if summary_path.exists() else {}
    run = Run.reopen(Path(cfg.run_dir), train_cfg)
    run.log(metrics, step)
    return run.finish({**previous, **metrics}, step)


def sample(cfg: SampleConfig) -> Path:
    """Write ``n`` samples of a trained run into its ``samples/`` folder; print text samples."""
    torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    train_cfg, model, state = load_trained(cfg.run_dir, device)
    vocab = state["info"].get("vocab")
    seed_everything(cfg.seed)
    step = int(state["step"])
    tag = f"sampled-T{cfg.temperature:g}-s{cfg.seed}"
    if cfg.prompt is not None and vocab is None:
        raise UserError(
            f"--prompt needs a model trained on text; {cfg.run_dir} used {train_cfg.data}"
        )
    with torch.no_grad():
        if vocab is not None:
            text = sample_text(model, vocab, cfg, device)
            print(text)
        else:
            samples = model.sample(cfg.n, temperature=cfg.temperature)
    run = Run.reopen(Path(cfg.run_dir), train_cfg)
    if vocab is not None:
        path = run.log_text(tag, text, step)
    else:
        picture = sample_picture(model.spec, samples)
        if picture is None:
            run.close()
            raise UserError(f"cannot draw samples of {model.spec.kind} data")
        path = run.log_image(tag, picture, step)
    run.close()
    print(f"samples: {path}")
    return path


def sample_text(model: GenerativeModel, vocab: str, cfg: SampleConfig, device: torch.device) -> str:
    """``cfg.n`` continuations of ``cfg.prompt`` (or of nothing), separated by rules."""
    from generative.datasets.text import decode, encode

    generate = getattr(model, "generate", None)
    if not callable(generate):
        raise UserError(f"{type(model).__name__} cannot continue text (it has no generate)")
    try:
        prompt = encode(cfg.prompt or "", vocab).to(device)
    except DataError as e:
        raise UserError(str(e)) from None
    ids = generate(prompt.expand(cfg.n, -1), cfg.length, temperature=cfg.temperature)
    return "\n\n----------\n\n".join(decode(row, vocab) for row in ids.cpu())
