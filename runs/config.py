"""One config mechanism: frozen dataclasses, parsed by tyro, saved to and loaded from YAML.

Every command's config subclasses :class:`RunOptions` (the options shared by all
training commands). Values are validated in ``__post_init__`` with :func:`check`, so a
bad value stops the command before any work starts, whether it came from the command
line or from a saved ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from runs.errors import ConfigError

C = TypeVar("C")

DEVICES = ("auto", "cpu", "cuda")


def check(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise a one-line :class:`ConfigError` naming ``field`` and its allowed range unless ok."""
    if not ok:
        raise ConfigError(f"invalid {field}={value!r}: must be {allowed}")


def check_choice(field: str, value: Any, choices: typing.Iterable[Any]) -> None:
    choices = tuple(choices)
    check(value in choices, field, value, "one of " + ", ".join(map(str, choices)))


def check_positive(cfg: Any, *fields: str, allow_zero: bool = False) -> None:
    """Check that each named numeric field of ``cfg`` is > 0 (>= 0 with ``allow_zero``)."""
    for name in fields:
        value = getattr(cfg, name)
        ok = value >= 0 if allow_zero else value > 0
        check(ok, name, value, ">= 0" if allow_zero else "> 0")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Options shared by every command that creates a run folder."""

    seed: int = 0
    """Seed for python, numpy and torch (and the environment)."""
    device: str = "auto"
    """auto | cpu | cuda; auto picks CUDA when it is available."""
    out: Path = Path("outputs")
    """Root folder for run folders: <out>/<kind>/<name>/<YYYYmmdd-HHMMSS>-s<seed>/."""
    threads: int = 1
    """torch threads per process (one is much faster for small models on few cores)."""
    quiet: bool = False
    """Hide progress bars."""
    config: Path | None = None
    """Re-run a saved config.yaml exactly (other flags given on the command line override it)."""
    resume: Path | None = None
    """Continue an interrupted run folder from its last checkpoint."""

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        check(self.seed >= 0, "seed", self.seed, ">= 0")
        check(self.threads >= 1, "threads", self.threads, ">= 1")


# Fields that say how to launch a run, not what the run is; they are not saved.
LAUNCH_FIELDS = ("config", "resume")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-safe dict of a (nested) config dataclass, without the launch-only fields."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if f.name in LAUNCH_FIELDS:
            continue
        out[f.name] = _plain(getattr(cfg, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build ``cls`` from a dict, recursing into nested dataclasses; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; valid: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if type(value) in args:  # already one of the types (``'auto'`` for ``float | str``)
            return value
        return _coerce(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, where)
    if tp is Path:
        return Path(value)
    if origin is tuple:
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, where) for v in value)
    if tp is float:
        return _float(value, where)
    if tp in (int, bool, str) and type(value) is not tp:  # bool is an int: compare exactly
        expected = {int: "an integer", bool: "true or false", str: "text"}[tp]
        raise ConfigError(f"invalid {where}={value!r}: expected {expected}")
    return value


def _float(value: Any, where: str) -> float:
    # YAML 1.1 (PyYAML) reads a number without a dot, such as 1e-4, as text.
    # A bool is an int, so it is refused by name; numpy scalars are numbers.Real.
    if isinstance(value, numbers.Real | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"invalid {where}={value!r}: expected a number")


def parse_overrides(items: typing.Iterable[str]) -> dict[str, Any]:
    """``--set key=value ...`` as a dict, each value read as YAML (``layers=4``, ``lr=1e-3``;
    :func:`from_dict` turns text into a number where the field is a float)."""
    values: dict[str, Any] = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            values[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"invalid set={item!r}: the value is not valid YAML") from None
    return values


def merge(values: dict[str, Any], more: typing.Mapping[str, Any]) -> None:
    """``values.update(more)``, except that a nested block (e.g. ``policy={horizon: 5}``)
    changes only the fields it names, keeping those set earlier (a task's tuned values, a
    preset's)."""
    for key, value in more.items():
        base = values.get(key)
        both = isinstance(base, typing.Mapping) and isinstance(value, typing.Mapping)
        values[key] = {**base, **value} if both else value


def component_config(cls: type[C], values: dict[str, Any], name: str) -> C:
    """A component's ``Config`` from ``values``; its own validation errors become ConfigErrors."""
    try:
        return from_dict(cls, values, where=f"--set for {name}")
    except ValueError as e:
        raise ConfigError(f"--set for {name}: {e}") from None


def save_yaml(cfg: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def load_yaml(cls: type[C], path: Path) -> C:
    """Load a config saved by :func:`save_yaml`; a missing file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return from_dict(cls, yaml.safe_load(path.read_text()) or {}, where=str(path))


def replace(cfg: C, **changes: Any) -> C:
    return dataclasses.replace(cfg, **changes)
