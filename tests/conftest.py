"""Shared test set-up: one torch thread per worker (much faster on 2 cores), headless GL."""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Shared test helpers (run_files.py) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_in_pytest_folder(tmp_path_factory):
    """Temporary files the libraries leave behind (Gymnasium's env checker rebuilds the
    point maze, whose model file is never deleted) go where pytest prunes them."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("tempfile"))
    yield
    tempfile.tempdir = previous


@pytest.fixture
def out_dir(tmp_path):
    """A fresh ``--out`` root for run folders."""
    return tmp_path / "outputs"
