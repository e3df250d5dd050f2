"""Plain data (YAML, ``--set``) -> typed config dataclasses, with the dotted key in every error."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, Union

import yaml

from wavtune.config.sections import Config, ConfigError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    # the value's own type first, so `int | float` keeps 20 an int and 20.0 a float
    for arg in sorted(args, key=lambda a: a is not type(value)):
        if arg is type(None):
            continue
        try:
            return _coerce(value, arg, key)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")


def _coerce_literal(value: Any, tp: Any, key: str) -> Any:
    choices = typing.get_args(tp)
    if value is False and "no" in choices:  # YAML 1.1 reads a bare `no` as false
        return "no"
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}"
                          f"{did_you_mean(value, choices)}")
    return value


def _coerce_list(value: Any, tp: Any, key: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list, e.g. [0.9, 1.1], got {value!r}")
    (item_type,) = typing.get_args(tp) or (Any,)
    return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]


def _coerce_number(value: Any, tp: Any, key: str) -> Any:
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):  # YAML 1.1 reads '1e-4' as a string
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected a number, got {value!r}")


def _coerce_scalar(value: Any, tp: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        return _coerce_number(value, tp, key)
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp`` (a config field's annotation), or ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin is Literal:
        return _coerce_literal(value, tp, key)
    if origin is list:
        return _coerce_list(value, tp, key)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, key)
    return _coerce_scalar(value, tp, key)


def did_you_mean(given: Any, choices: Sequence[Any]) -> str:
    """' (did you mean X?)' for the nearest choice to a misspelt ``given``, or ''."""
    names = [str(c) for c in choices]
    near = difflib.get_close_matches(str(given), names, n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


def from_dict(cls: type[Any], data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"{path}: unknown key{did_you_mean(key, names)}; valid keys here "
                              f"are: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (for YAML, JSON and checkpoints)."""
    return dataclasses.asdict(config)


def _field_type(dotted: str) -> Any:
    """The declared type of the config field at ``dotted``, or None when there is none."""
    tp: Any = Config
    for part in dotted.split("."):
        if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
            return None
        tp = typing.get_type_hints(tp).get(part)
    return tp


def _is_text(tp: Any) -> bool:
    return tp is str or (typing.get_origin(tp) is Literal
                         and all(isinstance(c, str) for c in typing.get_args(tp)))


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is a value, not a section")
        node = child
    value: Any = raw
    # A text field takes the value verbatim unless quoted: YAML would turn text.remove=| or =-
    # into '' or a list, train.mixed_precision=no into false, text.allowed=01234567 into a number.
    quoted = raw.strip()[:1] in ("'", '"')
    try:
        if raw != "" and (quoted or not _is_text(_field_type(dotted))):
            value = yaml.safe_load(raw)
    except yaml.YAMLError:  # e.g. text.remove=,.?! is not a YAML scalar: take it verbatim
        value = raw
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars) to plain config data."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r}: expected section.key=value, e.g. train.learning_rate=1e-4"
            )
        key, raw = item.split("=", 1)
        _set(data, key.strip(), raw)
    return data


