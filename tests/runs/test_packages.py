"""Our top-level names are also names of unrelated PyPI packages: each must resolve here."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["agents", "world_models", "generative", "envs", "runs"])
def test_package_resolves_to_this_repository(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name


def test_list_imports_neither_mujoco_nor_jax():
    code = (
        "import sys, runs.cli; runs.cli.main(['list']);"
        "heavy = [m for m in ('mujoco', 'jax', 'pymdp') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
