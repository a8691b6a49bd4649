"""Real image datasets: scikit-learn's digits and MNIST from a local IDX folder."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from generative.base import DataSpec
from generative.data import DataError, Dataset, binarize

# intro_dgm (Tomczak) uses these slices of load_digits, so numbers are comparable.
DIGITS_SPLIT = (1000, 1350)

MNIST_FILES = {
    "train-images": ("train-images-idx3-ubyte", 2051, 60000),
    "train-labels": ("train-labels-idx1-ubyte", 2049, 60000),
    "t10k-images": ("t10k-images-idx3-ubyte", 2051, 10000),
    "t10k-labels": ("t10k-labels-idx1-ubyte", 2049, 10000),
}
MNIST_VAL = 10000  # the last 10,000 training images validate when the training set exists
TEST_ONLY_SPLIT = (8000, 1000, 1000)
SPLIT_SEED = 0  # fixed, so every run sees the same MNIST split whatever its own seed
DEFAULT_ROOT = Path("data")


def image_dataset(
    name: str,
    splits: tuple[Tensor, Tensor, Tensor],
    levels: int,
    *,
    binarize_mode: str,
    seed: int,
    meta: dict,
) -> Dataset:
    """A :class:`Dataset` from integer ``(N, C, H, W)`` splits, binarised if asked.

    Binarisation draws from a generator seeded with ``seed``: the same seed gives the same
    binary images.
    """
    train, val, test = splits
    probs = None
    if binarize_mode != "none":
        gen = torch.Generator().manual_seed(seed)
        train, probs = binarize(train, levels, binarize_mode, gen)
        val, _ = binarize(val, levels, "static", gen)
        test, _ = binarize(test, levels, "static", gen)
        levels = 2
    spec = DataSpec("image", tuple(train.shape[1:]), levels)
    meta = {**meta, "binarize": binarize_mode}
    return Dataset(name, spec, train, val, test, meta, train_probs=probs)


def digits(*, seed: int = 0, data_root: str | None = None, binarize: str = "none") -> Dataset:
    """scikit-learn's ``load_digits``: 1,797 images ``(1, 8, 8)`` with 17 levels (0..16).

    Split ``[:1000]`` / ``[1000:1350]`` / ``[1350:]`` as in intro_dgm; ``data_root`` is
    unused (the data ships with scikit-learn).
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.from_numpy(raw.images.astype(np.int64))[:, None]
    labels = torch.from_numpy(raw.target.astype(np.int64))
    a, b = DIGITS_SPLIT
    meta = {"labels": {"train": labels[:a], "val": labels[a:b], "test": labels[b:]}}
    splits = (images[:a], images[a:b], images[b:])
    return image_dataset("digits", splits, 17, binarize_mode=binarize, seed=seed, meta=meta)


def mnist(*, seed: int = 0, data_root: str | None = None, binarize: str = "none") -> Dataset:
    """MNIST ``(1, 28, 28)`` with 256 levels from a folder of IDX files (``.gz`` or not).

    With the training files: train = the first 50,000 training images, val = the last
    10,000, test = the 10,000 test images. With only the ``t10k`` files the 10,000 test
    images are split 8,000 / 1,000 / 1,000 with a fixed seed, and ``meta["note"]`` says so.
    ``data_root`` may be the folder itself or a folder holding ``mnist/``.
    """
    folder = _mnist_folder(data_root)
    found = {key: _find(folder, fname) for key, (fname, _, _) in MNIST_FILES.items()}
    if found["t10k-images"] is None:
        missing = [MNIST_FILES[k][0] + ".gz" for k, p in found.items() if p is None]
        raise DataError(
            f"MNIST test images missing in {folder}: put {', '.join(missing)} (IDX files, "
            "gzipped or not) there, or pass --data-root FOLDER holding them"
        )
    test_images = _read_idx(found["t10k-images"], *MNIST_FILES["t10k-images"][1:])
    test_labels = _labels(found["t10k-labels"], "t10k-labels")
    meta: dict = {"folder": str(folder)}
    if found["train-images"] is not None:
        train_images = _read_idx(found["train-images"], *MNIST_FILES["train-images"][1:])
        train_labels = _labels(found["train-labels"], "train-labels")
        cut = train_images.shape[0] - MNIST_VAL
        splits = (train_images[:cut], train_images[cut:], test_images)
        meta["split"] = "train 50,000 / val 10,000 (training images) / test 10,000"
        if train_labels is not None and test_labels is not None:
            meta["labels"] = {"train": train_labels[:cut], "val": train_labels[cut:]}
            meta["labels"]["test"] = test_labels
    else:
        perm = torch.randperm(10000, generator=torch.Generator().manual_seed(SPLIT_SEED))
        a, b, _ = TEST_ONLY_SPLIT
        idx = (perm[:a], perm[a : a + b], perm[a + b :])
        splits = tuple(test_images[i] for i in idx)
        meta["split"] = "t10k only: 8,000 / 1,000 / 1,000"
        meta["note"] = (
            "MNIST training files absent: the 10,000 test images are split "
            f"8,000/1,000/1,000 (fixed seed {SPLIT_SEED}); numbers are not comparable to "
            "published MNIST results trained on 60,000 images"
        )
        if test_labels is not None:
            meta["labels"] = dict(
                zip(("train", "val", "test"), (test_labels[i] for i in idx), strict=True)
            )
    splits = tuple(s[:, None].long() for s in splits)
    return image_dataset("mnist", splits, 256, binarize_mode=binarize, seed=seed, meta=meta)


def _mnist_folder(data_root: str | None) -> Path:
    root = Path(data_root) if data_root is not None else DEFAULT_ROOT
    for folder in (root, root / "mnist"):
        if folder.is_dir() and any(_find(folder, f) for f, _, _ in MNIST_FILES.values()):
            return folder
    if not root.exists():
        raise DataError(
            f"MNIST folder not found: {root}; download t10k-images-idx3-ubyte.gz (and "
            "optionally train-images-idx3-ubyte.gz plus the label files) into a folder and "
            "pass --data-root FOLDER"
        )
    raise DataError(
        f"no MNIST IDX files in {root} or {root / 'mnist'}: expected "
        + ", ".join(f + "[.gz]" for f, _, _ in MNIST_FILES.values())
    )


def _find(folder: Path, fname: str) -> Path | None:
    for candidate in (folder / fname, folder / (fname + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _labels(path: Path | None, key: str) -> Tensor | None:
    return None if path is None else _read_idx(path, *MNIST_FILES[key][1:])


def _read_idx(path: Path, magic: int, count: int) -> Tensor:
    """Read an IDX file, checking its magic number, dimensions and byte size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise DataError(f"{path} is not an IDX file with magic number {magic} (corrupt?)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = (count, 28, 28)[:ndim]
    if dims != expected:
        raise DataError(f"{path} holds shape {dims}, expected {expected}")
    if len(raw) != header + int(np.prod(dims)):
        raise DataError(f"{path} has {len(raw)} bytes, expected {header + int(np.prod(dims))}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(np.int64))
