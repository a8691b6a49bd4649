"""Lazy registries: one plain dict per kind, mapping a name to ``("module:attr", description)``.

Each package owns its dict (``envs.TASKS``, ``agents.AGENTS``, ``world_models.WORLD_MODELS``,
``generative.MODELS``) and nothing is imported until an entry is resolved, so
``activegen list`` and a VAE run never import MuJoCo or JAX.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from runs.errors import UnknownNameError

Entry = tuple[str, str]

# kind -> "module:DICT" holding that kind's registry.
REGISTRIES: dict[str, str] = {
    "task": "envs:TASKS",
    "agent": "agents:AGENTS",
    "world model": "world_models:WORLD_MODELS",
    "generative model": "generative:MODELS",
}


def import_string(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def registry(kind: str) -> Mapping[str, Entry]:
    """The registry dict of one kind, e.g. ``registry("task")``."""
    return import_string(REGISTRIES[check_name("registry", kind, REGISTRIES)])


def check_name(kind: str, name: str, valid: Mapping[str, Any] | list[str]) -> str:
    """Return ``name`` if it is in ``valid``; otherwise raise an error naming the closest match."""
    if name in valid:
        return name
    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UnknownNameError(f"unknown {kind} {name!r}; {hint}valid: {', '.join(names)}")


def resolve(kind: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in the registry of ``kind``."""
    entries = registry(kind)
    target, _ = entries[check_name(kind, name, entries)]
    return import_string(target)


def describe_all() -> dict[str, dict[str, str]]:
    """``{kind: {name: description}}`` for every registry, without importing any entry."""
    return {kind: {n: d for n, (_, d) in sorted(registry(kind).items())} for kind in REGISTRIES}
