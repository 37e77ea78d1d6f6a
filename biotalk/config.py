"""Plain dataclass configs loaded from YAML, with ``key=value`` command-line overrides, type-checked.

Every script runs as ``python SCRIPT --config FILE [key=value ...]`` (front end: ``biotalk.cli``).
Nested dataclasses are addressed with dots (``optim.lr=3e-4``). An override is read by the type of its
field: text for ``str`` and ``Path`` fields (``query=yes`` stays the string ``yes``), a YAML scalar
otherwise (``seed=7``, ``freeze_text=true``, ``poolings=[cls,mean]`` or ``poolings=cls,mean``). Every
value is checked against its annotation (int, float, bool, str, Path, list/tuple, Literal, nested
dataclasses, ``X | None``) when loaded, so ``seed=abc`` fails at start with ``seed: expected an integer,
got 'abc'``, not halfway through a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")
_NONE = type(None)
_NULLS = ("null", "Null", "NULL", "~")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclass; the message names the key."""


@dataclasses.dataclass(frozen=True)
class _Text:
    """An override's raw text, read once the type of its field is known."""

    text: str


def _yaml_value(value: Any, where: str) -> Any:
    if not isinstance(value, _Text):
        return value
    try:
        return yaml.safe_load(value.text) if value.text != "" else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: cannot read {value.text!r} ({getattr(err, 'problem', None) or 'bad YAML'})") from None


def describe(annotation: Any) -> str:
    """What a value of ``annotation`` looks like, in words, for error messages."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) if a is not _NONE else "null" for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple) or annotation in (list, tuple):
        return f"a list ({describe(args[0])} each)" if args else "a list"
    if dataclasses.is_dataclass(annotation):
        return f"a section with keys {', '.join(f.name for f in dataclasses.fields(annotation))}"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path",
             dict: "a mapping"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _scalar(value: Any, annotation: Any, where: str) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is int:
        if number and float(value).is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    if annotation is float:
        if number:
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" (no dot) as a string
                return float(value)
            except ValueError:
                pass
    if annotation in (str, Path) and (isinstance(value, (str, Path)) or number):
        return annotation(str(value))
    raise ConfigError(f"{where}: expected {describe(annotation)}, got {value!r}")


def _sequence(value: Any, annotation: Any, where: str) -> list | tuple:
    origin, args = typing.get_origin(annotation) or annotation, typing.get_args(annotation)
    value = _yaml_value(value, where)
    if isinstance(value, str):  # poolings=cls,mean
        value = [_Text(v.strip()) for v in value.split(",") if v.strip()]
    elif not isinstance(value, (list, tuple)):
        value = [value]
    if not args:
        kinds = [Any] * len(value)
    elif origin is list or args[-1] is Ellipsis:
        kinds = [args[0]] * len(value)
    elif len(args) == len(value):
        kinds = list(args)
    else:
        raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
    items = [_coerce(v, kind, f"{where}[{i}]") for i, (v, kind) in enumerate(zip(value, kinds, strict=True))]
    return items if origin is list else tuple(items)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` checked (and converted where lossless) against ``annotation``; ``where`` names the key."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return _yaml_value(value, where)
    if origin in (Union, types.UnionType):
        if _NONE in args and (value is None or isinstance(value, _Text) and value.text.strip() in _NULLS):
            return None
        for arm in (a for a in args if a is not _NONE):
            try:
                return _coerce(value, arm, where)
            except ConfigError:
                continue
        shown = value.text if isinstance(value, _Text) else value
        raise ConfigError(f"{where}: expected {describe(annotation)}, got {shown!r}")
    if isinstance(value, _Text) and (annotation in (str, Path) or origin is Literal and value.text in args):
        return value.text if origin is Literal else annotation(value.text)
    value = _yaml_value(value, where)
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: expected {describe(annotation)}, got {value!r}")
    if origin in (list, tuple) or annotation in (list, tuple):
        return _sequence(value, annotation, where)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, dict):
            return _build(annotation, value, f"{where}.")
        if isinstance(value, annotation):
            return value
        raise ConfigError(f"{where}: expected {describe(annotation)}, got {value!r}")
    if origin is dict or annotation is dict:
        if isinstance(value, dict):
            return {k: _coerce(v, args[1] if args else Any, f"{where}.{k}") for k, v in value.items()}
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    if isinstance(value, dict):
        raise ConfigError(f"{where}: expected {describe(annotation)}, got a section ({', '.join(map(str, value))})")
    if annotation in (int, float, bool, str, Path):
        return _scalar(value, annotation, where)
    return value


def _build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            raise ConfigError(f"{prefix}{key}: unknown key; {hint}{cls.__name__} has {', '.join(fields)}")
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: required, no default; set {prefix}{missing[0]}=...")
    return cls(**{k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in values.items()})


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for i, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(keys[: i + 1])}: not a section, so {dotted}=... cannot be set")
    node[keys[-1]] = value


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from an optional YAML file, then apply ``key=value`` overrides; raise ``ConfigError``."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--config: file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"--config: {path} is not valid YAML ({getattr(err, 'problem', None) or err})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config: {path}: top level must be a mapping of keys")
        tree.update(loaded)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item}: not a key=value override")
        _set_dotted(tree, key.strip(), _Text(raw))
    return _build(cls, tree)


def to_dict(config: Any) -> dict[str, Any]:
    """A YAML-safe dict of a config (paths as strings), for saving next to outputs."""

    def clean(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(config))
