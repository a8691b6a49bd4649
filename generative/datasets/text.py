"""A character corpus from any text file: token ids over the file's own alphabet."""

from __future__ import annotations

from pathlib import Path

import torch

from generative.base import DataSpec
from generative.data import DataError, Dataset

DEFAULT_FILE = "tinyshakespeare.txt"
SPLIT = (0.9, 0.05)  # contiguous: first 90% train, next 5% validation, last 5% test


def text(*, seed: int = 0, data_root: str | None = None, seq_len: int = 256) -> Dataset:
    """Characters of a text file as three contiguous 1-D streams of ids (90% / 5% / 5%).

    ``data_root`` is the file, or a folder holding ``tinyshakespeare.txt`` (directly or in
    ``text/``). ``meta["vocab"]`` is the sorted alphabet: id ``i`` is ``vocab[i]``. Training
    windows of ``seq_len`` characters are drawn at random offsets; ``seed`` is unused since
    the split is fixed.
    """
    path = corpus_path(data_root)
    content = path.read_text(encoding="utf-8")
    vocab = "".join(sorted(set(content)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in content], dtype=torch.long)
    a = int(len(ids) * SPLIT[0])
    b = a + int(len(ids) * SPLIT[1])
    if seq_len < 1 or len(ids) - b <= seq_len:
        raise DataError(
            f"invalid seq_len={seq_len} for {path} ({len(ids)} chars): must be >= 1 and "
            "shorter than the 5% test split"
        )
    spec = DataSpec("sequence", (seq_len,), len(vocab))
    meta = {"vocab": vocab, "path": str(path), "chars": len(ids)}
    return Dataset("text", spec, ids[:a], ids[a:b], ids[b:], meta)


def corpus_path(data_root: str | None) -> Path:
    """The text file named by ``data_root`` (see :func:`text`), or a clear error."""
    if data_root is None:
        raise DataError(
            "the text dataset needs --data-root: a text file, or a folder holding "
            f"{DEFAULT_FILE} (Tiny Shakespeare, 1,115,394 characters)"
        )
    root = Path(data_root)
    if root.is_file():
        return root
    if root.is_dir():
        for candidate in (root / DEFAULT_FILE, root / "text" / DEFAULT_FILE):
            if candidate.is_file():
                return candidate
        raise DataError(f"no {DEFAULT_FILE} in {root} or {root / 'text'}; pass the text file")
    raise DataError(f"text corpus not found: {root}; pass --data-root with a text file")


def encode(text_: str, vocab: str) -> torch.Tensor:
    """Characters -> ``(len,)`` ids; a character outside ``vocab`` is an error naming it."""
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(text_) - set(index))
    if unknown:
        raise DataError(f"characters not in the corpus alphabet: {''.join(unknown)!r}")
    return torch.tensor([index[c] for c in text_], dtype=torch.long)


def decode(ids: torch.Tensor, vocab: str) -> str:
    """``(len,)`` ids -> characters."""
    return "".join(vocab[i] for i in ids.tolist())
