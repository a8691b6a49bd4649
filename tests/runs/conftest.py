import sys
from pathlib import Path

import pytest

from runs import cli

# The stub command's module must be importable by its registry string.
sys.path.insert(0, str(Path(__file__).parent))

TOY = ("toy_command:ToyConfig", "toy_command:toy_train", "A stub training command.")


@pytest.fixture
def toy_cli(monkeypatch):
    """``runs.cli.main`` with the stub ``toy-train`` command registered."""
    monkeypatch.setitem(cli.COMMANDS, "toy-train", TOY)
    return cli.main
