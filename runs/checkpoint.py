"""Atomic, weights-only checkpoints and RNG state capture.

A checkpoint is one ``state_dict``-style dict of tensors, numbers, strings, lists and
dicts (never pickled objects), so it loads with ``torch.load(..., weights_only=True)``.
It is written to a temporary file in the same folder, synced, and moved into place with
``os.replace``: a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runs.errors import UserError


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (weights only, no pickled code)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def load_into(module: Any, state: Any, source: Path | str) -> None:
    """``module.load_state_dict(state)``; a checkpoint that does not fit the module (written
    by another version of the code: a missing or extra key, another shape) is reported in one
    line naming ``source``, not as torch's multi-line traceback."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as e:
        detail = " ".join(str(e).split())
        raise UserError(
            f"{source} does not fit this version of activegen ({detail}); "
            "it was written by another version: start a new run"
        ) from None


def rng_state() -> dict[str, Any]:
    """The state of python's, numpy's and torch's global generators, as checkpoint-safe values."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators captured by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # One state per GPU the run saw; resumed where fewer are visible, those it has.
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
