"""Training recipes as nested dataclasses, loaded from YAML and overridden from the command line.

Every leaf field of a recipe becomes a flag named by its dotted path (``--optim.lr 3e-4``), so
``--help`` lists them all with their defaults and nothing needs to be declared twice. Other stages
(finetuning, evaluation) reuse these helpers with their own dataclasses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def parse_value(text: str, tp: Any, name: str) -> Any:
    """Parse a command-line string into a field of type ``tp`` (bool, int, float, str, list, Optional)."""
    inner, optional = _unwrap_optional(tp)
    if optional and text.lower() in ("none", "null", ""):
        return None
    origin = typing.get_origin(inner)
    if origin is list or inner is list:
        (item,) = typing.get_args(inner) or (str,)
        return [parse_value(part.strip(), item, name) for part in text.split(",") if part.strip()]
    if origin in (typing.Union, types.UnionType):  # e.g. str | list[str]: a comma means a list
        args = typing.get_args(inner)
        if "," in text and any(typing.get_origin(a) is list for a in args):
            return [p.strip() for p in text.split(",") if p.strip()]
        return text
    if inner is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"--{name} expects true/false, got {text!r}")
    if inner in (int, float):
        try:
            return inner(text)
        except ValueError:
            raise ValueError(f"--{name} expects {inner.__name__}, got {text!r}") from None
    return text


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def iter_leaves(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, Any, Any]]:
    """Yield (dotted name, type, default) for every non-dataclass field of a nested dataclass."""
    hints = _hints(cls)
    for name, f in _fields(cls).items():
        tp = hints[name]
        full = f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            yield from iter_leaves(tp, full + ".")
        else:
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            )
            yield full, tp, default


def from_dict(cls: type[T], data: dict[str, Any], where: str = "recipe") -> T:
    """Build a nested dataclass from a dict; unknown keys are an error naming the key."""
    if not isinstance(data, dict):
        raise TypeError(f"{where} must be a mapping, got {type(data).__name__}")
    hints, fields = _hints(cls), _fields(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in {where}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        kwargs[name] = from_dict(tp, value, f"{where}.{name}") if dataclasses.is_dataclass(tp) else value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def set_path(obj: Any, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        obj = getattr(obj, p)
    setattr(obj, leaf, value)


def add_recipe_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--a.b`` flag per leaf field, defaulting to 'not given' so YAML values survive."""
    group = parser.add_argument_group("recipe fields (override the YAML; lists are comma-separated)")
    for name, tp, default in iter_leaves(cls):
        inner, _ = _unwrap_optional(tp)
        tname = getattr(inner, "__name__", str(inner))
        group.add_argument(f"--{name}", dest=f"recipe:{name}", default=None, metavar=tname.upper(),
                           help=f"default: {default!r}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_recipe(
    cls: type[T], path: str | Path | None, args: argparse.Namespace | None = None, base: dict[str, Any] | None = None
) -> T:
    """Dataclass defaults ← ``base`` ← YAML/JSON file ← command-line overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml  # optional dependency of the train extra

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    recipe = from_dict(cls, _merge(base or {}, data), where=str(path or "recipe"))
    if args is not None:
        types_by_name = {name: tp for name, tp, _ in iter_leaves(cls)}
        for key, raw in vars(args).items():
            if key.startswith("recipe:") and raw is not None:
                name = key.split(":", 1)[1]
                set_path(recipe, name, parse_value(raw, types_by_name[name], name))
    validate = getattr(recipe, "validate", None)
    if callable(validate):
        validate()
    return recipe


def dump_recipe(recipe: Any, path: str | Path) -> None:
    """Write the resolved recipe as YAML (or JSON when PyYAML is missing), atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        import yaml

        tmp.write_text(yaml.safe_dump(to_dict(recipe), sort_keys=False))
    except ImportError:
        tmp.write_text(json.dumps(to_dict(recipe), indent=2))
    tmp.replace(path)
