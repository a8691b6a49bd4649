"""The run folder: the only writer of a run's files.

``outputs/<kind>/<name>/<YYYYmmdd-HHMMSS>-s<seed>/`` holds ``config.yaml``, TensorBoard
event files, ``metrics.jsonl`` (one JSON object per log call, with ``step``),
``summary.json`` (at the end), ``checkpoints/``, ``videos/`` and ``samples/``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from runs import config as config_lib
from runs.checkpoint import load_checkpoint, rng_state, save_checkpoint
from runs.errors import ConfigError, UserError

CHECKPOINT = "last.pt"
LOCK = ".lock"


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is a user error."""
    config_lib.check_choice("device", name, config_lib.DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "invalid device='cuda': no CUDA device is available here; use cpu or auto"
        )
    return torch.device(name)


def versions() -> dict[str, str]:
    """Versions of the stack, read from package metadata (nothing heavy is imported)."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "gymnasium", "mujoco", "stable-baselines3", "inferactively-pymdp"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


_HELD: dict[Path, IO[str]] = {}
"""This process's folder locks, by folder."""


def _lock(directory: Path) -> IO[str]:
    """Hold an exclusive lock on the run folder while this process writes it. The kernel
    releases it when the process ends, however it ends, so a killed run can be resumed,
    but a second process (a ``--resume`` of a run still going) is refused before it
    truncates the first one's logs. Within one process a new :class:`Run` of the folder
    takes over from an earlier one left open (by an exception: runs are sequential)."""
    key = directory.resolve()
    earlier = _HELD.pop(key, None)
    if earlier is not None:
        earlier.close()
    handle = (directory / LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise UserError(
            f"run folder {directory} is in use by another process (pid {holder}): "
            "let it finish or stop it before resuming"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _HELD[key] = handle
    return handle


def _scalar(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().cpu().item())
    return float(value)


class Run:
    """One run folder. Create with :meth:`create`, or :meth:`reopen` to resume.

    After :meth:`reopen`, ``resume_state`` holds the last checkpoint (``None`` if the run
    died before its first one); logs written after that checkpoint are dropped so that the
    resumed run appends without duplicating or losing steps.
    """

    def __init__(
        self,
        directory: Path,
        config: Any,
        resume_state: dict[str, Any] | None = None,
        lock: IO[str] | None = None,
    ):
        self.dir = Path(directory)
        self._folder_lock = lock or _lock(self.dir)
        self.config = config
        self.resume_state = resume_state
        for sub in ("checkpoints", "videos", "samples"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.start_step = int(resume_state["step"]) if resume_state else 0
        self._prior_seconds = float(resume_state.get("wall_seconds", 0.0)) if resume_state else 0.0
        self._started = time.perf_counter()
        purge = self.start_step + 1 if resume_state is not None else None
        self.writer = SummaryWriter(log_dir=str(self.dir), purge_step=purge)
        self._metrics = (self.dir / "metrics.jsonl").open("a")

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def create(cls, config: Any, kind: str, name: str, directory: Path | None = None) -> Run:
        """A new folder under ``config.out`` (or the given, not yet existing ``directory``,
        as a study's cells use); writes ``config.yaml`` and the hyper-parameters."""
        if directory is None:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            base = Path(config.out) / kind / name
            directory = base / f"{stamp}-s{config.seed}"
            k = 1
            while directory.exists():
                directory = base / f"{stamp}-s{config.seed}-{k}"
                k += 1
        directory.mkdir(parents=True)
        config_lib.save_yaml(config, directory / "config.yaml")
        run = cls(directory, config)
        rows = "\n".join(f"|{k}|{v}|" for k, v in config_lib.to_dict(config).items())
        run.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + rows)
        return run

    @classmethod
    def reopen(cls, directory: Path, config: Any) -> Run:
        """Reopen ``directory`` to continue it from its last checkpoint."""
        directory = Path(directory)
        lock = _lock(directory)
        ckpt = directory / "checkpoints" / CHECKPOINT
        state = load_checkpoint(ckpt) if ckpt.exists() else None
        last = int(state["step"]) if state else 0
        _truncate_metrics(directory / "metrics.jsonl", last)
        return cls(directory, config, state, lock)

    @classmethod
    def open(cls, config: Any, kind: str, name: str) -> Run:
        """:meth:`reopen` ``config.resume`` if set, else :meth:`create` a new folder."""
        if config.resume is not None:
            return cls.reopen(config.resume, config)
        return cls.create(config, kind, name)

    # -- logging ----------------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Scalars to TensorBoard and one JSON line to ``metrics.jsonl``."""
        values = {k: _scalar(v) for k, v in metrics.items()}
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        record = {
            "step": int(step),
            **{k: (v if math.isfinite(v) else str(v)) for k, v in values.items()},
        }
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def log_image(self, tag: str, image: np.ndarray, step: int) -> Path:
        """Save an ``(H, W, C)`` uint8 image to ``samples/<tag>-<step>.png`` and TensorBoard."""
        import imageio.v3 as iio

        path = self.dir / "samples" / f"{tag.replace('/', '-')}-{step:07d}.png"
        iio.imwrite(path, image)
        self.writer.add_image(tag, image, step, dataformats="HWC")
        return path

    def log_text(self, tag: str, text: str, step: int) -> Path:
        """Save ``text`` to ``samples/<tag>-<step>.txt`` and TensorBoard."""
        path = self.dir / "samples" / f"{tag.replace('/', '-')}-{step:07d}.txt"
        path.write_text(text)
        self.writer.add_text(tag, text, step)
        return path

    def log_video(self, tag: str, frames: np.ndarray, step: int, fps: int = 30) -> None:
        """Log ``(T, H, W, C)`` uint8 frames to TensorBoard (stored as an animated GIF)."""
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None]
        self.writer.add_video(tag, video, step, fps=fps)

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoints" / CHECKPOINT

    @property
    def wall_seconds(self) -> float:
        return self._prior_seconds + time.perf_counter() - self._started

    def save_checkpoint(self, state: dict[str, Any], step: int) -> Path:
        """Atomically write ``state`` plus step, wall time and RNG states."""
        full = {**state, "step": int(step), "wall_seconds": self.wall_seconds, "rng": rng_state()}
        self.writer.flush()
        return save_checkpoint(full, self.checkpoint_path)

    # -- end --------------------------------------------------------------------------------
    def finish(self, final_metrics: Mapping[str, Any], steps: int) -> Path:
        """Write ``summary.json``, close the logs and print the run folder."""
        summary = {
            "metrics": {k: _scalar(v) for k, v in final_metrics.items()},
            "steps": int(steps),
            "wall_seconds": round(self.wall_seconds, 3),
            "versions": versions(),
            "command": " ".join(sys.argv),
        }
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.close()
        print(f"run folder: {self.dir}")
        return self.dir

    def close(self) -> None:
        self.writer.close()
        self._metrics.close()
        self._folder_lock.close()  # releases the folder (closing again in _lock is a no-op)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._metrics.closed:
            self.close()


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after ``last_step`` (they will be logged again on resume)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by the kill
            continue
        if record.get("step", 0) <= last_step:
            kept.append(line)
    path.write_text("".join(line + "\n" for line in kept))


def load_trained_run(
    directory: Path, config_cls: type, device: Any
) -> tuple[Any, dict[str, Any], Path]:
    """A finished (or interrupted) run's config, its last checkpoint and that checkpoint's path."""
    directory = require_run_dir(directory)
    cfg = config_lib.load_yaml(config_cls, directory / "config.yaml")
    path = directory / "checkpoints" / CHECKPOINT
    if not path.is_file():
        raise UserError(f"no checkpoint in {directory}: the run stopped before saving one")
    return cfg, load_checkpoint(path, map_location=device), path


def require_run_dir(directory: Path) -> Path:
    """A run folder given on the command line must exist and hold a ``config.yaml``."""
    directory = Path(directory)
    if not (directory / "config.yaml").is_file():
        raise UserError(f"not a run folder (no config.yaml): {directory}")
    return directory
