"""Datasets for the generative families: one registry, one :class:`Dataset` type.

``DATASETS`` maps a name to ``("module:loader", one-line description)``; a loader is
imported only when used and is called as ``loader(seed=..., data_root=..., **options)``.
Every dataset has fixed train / validation / test splits, and whatever is random in it
(toy samples, binarisation, procedural sprites, a split without a published one) comes
from ``seed``, so the same seed gives the same data.

Storage conventions:

- discrete images: integer levels ``(N, C, H, W)`` in ``[0, levels - 1]`` with
  ``spec.levels`` set (17 for digits, 256 for MNIST, 2 once binarised);
- videos: integer levels ``(N, T, C, H, W)``, ``spec.kind == "video"``;
- text: a 1-D stream of token ids per split; ``spec.kind == "sequence"``,
  ``spec.shape == (seq_len,)``, ``spec.levels`` the vocabulary size and
  ``meta["vocab"]`` the characters in id order; fixed-length sequence sets (signals)
  are ``(N, T)`` instead;
- toy 2-D densities: float ``(N, 2)``, ``spec.levels is None``.

Discrete data comes out of :meth:`Dataset.batch` and :meth:`Dataset.batches` as
``torch.long``; large sets (sprites) are held as ``uint8`` to save memory.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from generative.base import DataSpec

DATASETS: dict[str, tuple[str, str]] = {
    "digits": (
        "generative.datasets.images:digits",
        "scikit-learn's 8x8 handwritten digits, 17 levels; intro_dgm split 1000/350/447",
    ),
    "mnist": (
        "generative.datasets.images:mnist",
        "MNIST 28x28, 256 levels, from a local IDX folder (--data-root)",
    ),
    "sprites": (
        "generative.datasets.sprites:sprites",
        "procedural dSprites-style 64x64 binary shapes with factors shape/scale/rotation/x/y",
    ),
    "moving-sprites": (
        "generative.datasets.sprites:moving_sprites",
        "videos of one bouncing, spinning sprite (T, 1, 64, 64), binary",
    ),
    "text": (
        "generative.datasets.text:text",
        "character corpus from a text file (--data-root FILE or a folder with tinyshakespeare.txt)",
    ),
    "signals": (
        "generative.datasets.signals:signals",
        "1-D signals: sums of random sines plus noise, quantised to 64 levels",
    ),
    "moons": ("generative.datasets.toy:moons", "2-D toy density: two interleaved half circles"),
    "8gaussians": ("generative.datasets.toy:eight_gaussians", "2-D toy density: 8 gaussians"),
    "checkerboard": ("generative.datasets.toy:checkerboard", "2-D toy density: checkerboard"),
    "pinwheel": ("generative.datasets.toy:pinwheel", "2-D toy density: 5-armed pinwheel"),
    "2spirals": ("generative.datasets.toy:two_spirals", "2-D toy density: two spirals"),
}

SPLITS = ("train", "val", "test")
BINARIZE = ("none", "static", "dynamic")


class DataError(Exception):
    """Data that cannot be loaded (missing or corrupt files, bad options).

    ``runs`` turns it into a one-line user error; it lives here because ``generative``
    imports nothing else of ours.
    """


@dataclasses.dataclass
class Dataset:
    """Train / validation / test tensors of one dataset and the :class:`DataSpec` they share.

    ``train_probs`` is set for dynamically binarised data: ``(N, C, H, W)`` pixel
    probabilities from which :meth:`batch` draws fresh binary training images (``train``
    then holds one fixed binarisation of them).
    """

    name: str
    spec: DataSpec
    train: Tensor
    val: Tensor
    test: Tensor
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_probs: Tensor | None = None

    def split(self, split: str) -> Tensor:
        """The stored tensor of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, split)

    @property
    def is_stream(self) -> bool:
        """True for text: each split is one long 1-D stream cut into windows on the fly."""
        return self.spec.kind == "sequence" and self.train.dim() == 1

    def size(self, split: str) -> int:
        """Examples in ``split`` (for streams: the number of whole windows)."""
        data = self.split(split)
        if self.is_stream:
            return data.numel() // self.spec.shape[0]
        return data.shape[0]

    def batch(self, split: str, n: int) -> Tensor:
        """``n`` random examples ``(n, *spec.shape)`` drawn with the global torch RNG.

        Using the global generator (restored from checkpoints) makes resumed runs exact.
        Streams give windows at uniformly random offsets.
        """
        data = self.split(split)
        if self.is_stream:
            length = self.spec.shape[0]
            starts = torch.randint(0, data.numel() - length + 1, (n,))
            out = data[starts[:, None] + torch.arange(length)]
        elif split == "train" and self.train_probs is not None:
            idx = torch.randint(0, self.train_probs.shape[0], (n,))
            out = torch.bernoulli(self.train_probs[idx])
        else:
            out = data[torch.randint(0, data.shape[0], (n,))]
        return self._out(out)

    def batches(self, split: str, batch_size: int, limit: int = 0) -> Iterator[Tensor]:
        """An ordered pass over ``split`` in batches (the last may be smaller).

        Streams are cut into consecutive, non-overlapping windows (a partial tail is
        dropped). ``limit > 0`` stops after that many examples.
        """
        data = self.split(split)
        if self.is_stream:
            length = self.spec.shape[0]
            data = data[: self.size(split) * length].view(-1, length)
        total = data.shape[0] if limit <= 0 else min(limit, data.shape[0])
        for start in range(0, total, batch_size):
            yield self._out(data[start : min(start + batch_size, total)])

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on ``device`` (batches are then drawn there)."""
        move = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **move)

    def _out(self, x: Tensor) -> Tensor:
        return x.long() if self.spec.levels is not None else x


def load_dataset(
    name: str, *, seed: int = 0, data_root: str | None = None, **options: Any
) -> Dataset:
    """Load dataset ``name`` (a key of :data:`DATASETS`).

    ``options`` are the loader's own (e.g. ``binarize="static"`` for images, ``seq_len``
    for text, ``n`` for toy densities); an unknown option is an error.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    module_name, _, attr = DATASETS[name][0].partition(":")
    loader = getattr(importlib.import_module(module_name), attr)
    try:
        return loader(seed=seed, data_root=data_root, **options)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise DataError(f"dataset {name!r}: {e}") from None
        raise


def dequantize(x_levels: Tensor, levels: int) -> Tensor:
    """Uniform dequantisation: integer levels -> floats in ``[0, 1)``, same shape.

    ``(x + u) / levels`` with ``u ~ U[0, 1)`` from the global torch RNG. A density ``p`` on
    these values gives a discrete log-likelihood bound
    ``log P(x) >= E_u[log p((x + u) / levels)] - D * log(levels)``.
    """
    x = x_levels.float()
    return (x + torch.rand_like(x)) / levels


def dequantization_offset(levels: int, dims: int) -> float:
    """``D * log(levels)``: nats to subtract from a density on ``[0, 1)^D`` for discrete data."""
    return dims * math.log(levels)


def binarize(
    images: Tensor, levels: int, mode: str, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor | None]:
    """Binarise integer images ``(N, ...)`` with ``levels`` grey levels.

    ``static``: one Bernoulli draw per pixel with probability ``x / (levels - 1)``, fixed by
    ``generator``; ``dynamic``: the same fixed draw plus the probabilities, so that training
    batches are redrawn every time. Returns ``(binary long images, probabilities or None)``.
    """
    if mode not in BINARIZE or mode == "none":
        raise DataError(f"invalid binarize={mode!r}: must be static or dynamic")
    probs = images.float() / (levels - 1)
    binary = torch.bernoulli(probs, generator=generator).long()
    return binary, (probs if mode == "dynamic" else None)
