"""Recipes and command options: typed dataclasses, checked in one place, read from YAML and from flags.

A recipe is a dataclass of sections (``PretrainRecipe.optim.lr``); the options of a command are a dataclass
of its own fields (``--model``) and of library configs nested as sections (``loclip-label``'s ``label:
LabelConfig`` gives ``--label.batch_size``), so a command never redeclares a library field. Every leaf field
declares

- a type: ``bool``, ``int``, ``float``, ``str``, a ``Literal`` of choices, ``X | None``, ``list[X]``, or a
  union of those; ``Annotated[int, at_least(1)]`` adds a range (``at_least``, ``positive``, ``between``);
- optionally ``metadata={"help": ...}`` (``option(...)`` writes it), shown by ``--help`` with the default.

``check(obj)`` checks every field against its declared type and range and is the only place that does:
YAML values and flags go through it alike, and an error names the field, the value and what is expected.
It converts what is unambiguous (an int where a float is declared, PyYAML's string ``"1e-3"`` for a
float, ``3.0`` for an int) and refuses the rest (``2.5`` for an int, ``true`` for a number, NaN or
infinity anywhere). A recipe's ``validate()`` then checks what involves several fields. A config that Python
code also builds directly derives from ``CheckedConfig``: it is checked when built, and only then. Each recipe is
so checked once, where it enters (``load_recipe`` for files and flags). Values are quoted in messages through
``loclip.core.messages.shown``, cut short. A recipe file is at most ``MAX_RECIPE_BYTES``, and its YAML aliases
may not expand it past ``MAX_RECIPE_VALUES`` values (an alias bomb is refused unbuilt).

``add_arguments`` makes one flag per leaf from the dataclass itself: ``--optim.lr`` / ``--data.batch_size``
(``--data.batch-size`` works too), a command's own fields ``--like-this``; booleans take ``true``/``false`` or
stand alone for true; lists take several values or one comma-separated value. A command keeps the old spellings
of flags that became a nested field in ``FLAG_ALIASES`` (``{"--batch-size": "label.batch_size"}``; a flag that
sets a value and takes none: ``{"--no-progress": ("label.progress", False)}``), listed by ``--help`` beside
the field's own flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from .json_input import read_json, read_text
from .messages import shown

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"none", "null"}


# ---------------------------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class Range:
    """A closed or open interval a number must lie in (``None``: unbounded on that side)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        if self.high is None:
            return f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        if self.low is None:
            return f"< {self.high:g}" if self.high_open else f"<= {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


def at_least(low: float) -> Range:
    return Range(low=low)


def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Range:
    return Range(low, high, low_open, high_open)


positive = Range(low=0, low_open=True)

PositiveInt = Annotated[int, at_least(1)]
NonNegativeInt = Annotated[int, at_least(0)]
PositiveFloat = Annotated[float, positive]
NonNegativeFloat = Annotated[float, at_least(0)]
UnitFloat = Annotated[float, between(0, 1)]


def option(
    default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING, **metadata: Any
) -> Any:
    """A dataclass field with ``--help`` text (and optionally ``group=``, the ``--help`` section it is listed
    under); no default makes the flag required. On a nested section of a command, ``help`` titles the ``--help``
    section of its flags."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"help": help, **metadata})


# A command's old flag spellings: flag -> the dotted field it sets, or (dotted field, the value it sets: no argument)
FlagAliases = dict[str, str | tuple[str, Any]]


# ---------------------------------------------------------------------------------------------- checks


def _split_annotated(tp: Any) -> tuple[Any, list[Range]]:
    if typing.get_origin(tp) is Annotated:
        base, *extras = typing.get_args(tp)
        return base, [e for e in extras if isinstance(e, Range)]
    return tp, []


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def describe(tp: Any) -> str:
    """What a type expects, in words (for error messages and ``--help``)."""
    base, ranges = _split_annotated(tp)
    where = "".join(f" {r.describe()}" for r in ranges)
    if _is_union(base):
        members = [a for a in typing.get_args(base) if a is not type(None)]
        if all(typing.get_origin(a) is Literal for a in members):  # Literal[...] | Literal[...]: one choice list
            members = [Literal[tuple(c for a in members for c in typing.get_args(a))]]
        parts = [describe(a) for a in members]
        text = " or ".join(parts)
        return text + " or null" if type(None) in typing.get_args(base) else text
    if typing.get_origin(base) is Literal:
        return f"one of {list(typing.get_args(base))}"
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base) or (Any,)
        return f"a list of ({describe(item)})"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}
    return names.get(base, getattr(base, "__name__", str(base))) + where


def check_value(name: str, value: Any, tp: Any) -> Any:
    """``value`` checked against ``tp`` (converted where unambiguous); ``ValueError`` naming ``name`` if not."""
    base, ranges = _split_annotated(tp)

    def fail() -> ValueError:
        return ValueError(f"{name} = {shown(value)}: expected {describe(tp)}")

    if base is Any:
        return value
    if _is_union(base):
        args = typing.get_args(base)
        if value is None:
            if type(None) in args:
                return None
            raise fail()
        for arg in (a for a in args if a is not type(None)):
            try:
                value = check_value(name, value, arg)
            except ValueError:
                continue
            if any(not r.contains(value) for r in ranges):
                raise fail()
            return value
        raise fail()
    origin = typing.get_origin(base)
    if origin is Literal:
        if any(value == c and type(value) is type(c) for c in typing.get_args(base)):
            return value
        raise fail()
    if origin is list:
        (item,) = typing.get_args(base) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise fail()
        return [check_value(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
    if base is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if base is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail()
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):  # PyYAML reads 1e-3 as a str
            raise fail()
        try:
            value = float(value)
        except (ValueError, OverflowError):  # not a number; an int beyond the float range
            raise fail() from None
        if not math.isfinite(value):
            raise fail()
    elif base is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise fail()
    elif base is dict or origin is dict:
        if not isinstance(value, dict):
            raise fail()
    if any(not r.contains(value) for r in ranges):
        raise fail()
    return value


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def check(obj: Any, where: str = "") -> Any:
    """Check (and convert in place) every field of the dataclass ``obj``, nested ones included → ``obj``. A
    nested ``CheckedConfig`` was checked when it was built and is not checked again."""
    types_ = hints(type(obj))
    for f in dataclasses.fields(obj):
        name, value, tp = f"{where}{f.name}", getattr(obj, f.name), types_[f.name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, tp):
                raise ValueError(f"{name} = {shown(value)}: expected a {tp.__name__} section")
            if not isinstance(value, CheckedConfig):
                check(value, f"{name}.")
        else:
            object.__setattr__(obj, f.name, check_value(name, value, tp))  # frozen dataclasses too
    return obj


class CheckedConfig:
    """Base of a config dataclass that Python code builds directly (``DataConfig(...)``, ``Limits(...)``) as well
    as a recipe section: it checks itself when built, ``check`` then its own ``validate()`` if it has one, so a bad
    value is refused at once, naming the field after ``FIELD_PREFIX`` (``"data."``). Built by ``load_recipe`` it is
    checked there, once: ``check`` of the enclosing recipe skips it, and a loader given one does not check again."""

    FIELD_PREFIX: ClassVar[str] = ""

    def __post_init__(self) -> None:
        check(self, self.FIELD_PREFIX)
        validate = getattr(self, "validate", None)
        if callable(validate):
            validate()


# ---------------------------------------------------------------------------------------------- dicts and files


def iter_leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """``(dotted name, type, field)`` of every non-dataclass field of a (nested) dataclass."""
    types_ = hints(cls)
    for f in dataclasses.fields(cls):
        tp = types_[f.name]
        if dataclasses.is_dataclass(tp):
            yield from iter_leaves(tp, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", tp, f


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _has_default(f: dataclasses.Field) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def from_dict(cls: type[T], data: Any, where: str = "recipe") -> T:
    """A (nested) dataclass from a mapping; unknown keys, and a section that is not a mapping, are errors
    naming where. Values are checked afterwards by ``check`` (a ``CheckedConfig`` section checks itself as it is
    built)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping of fields, got {type(data).__name__} {shown(data)}")
    types_, fields = hints(cls), {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]  # in file order: YAML keys may be numbers, null or strings
    if unknown:
        raise ValueError(f"unknown field(s) {shown(unknown)} in {where}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        tp = types_[name]
        if dataclasses.is_dataclass(tp):  # an empty YAML section (`eval:` with nothing under it) is None
            kwargs[name] = from_dict(tp, {} if value is None else value, f"{where}.{name}")
        else:
            kwargs[name] = value
    for name, f in fields.items():  # a section without a default is built from its fields' own defaults
        if name not in kwargs and dataclasses.is_dataclass(types_[name]) and not _has_default(f):
            kwargs[name] = from_dict(types_[name], {}, f"{where}.{name}")
    missing = [n for n, f in fields.items() if n not in kwargs and not _has_default(f)]
    if missing:
        raise ValueError(f"{where}: missing required field(s) {missing}")
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MAX_RECIPE_BYTES = 16 * 2**20  # a recipe is a few kB; a long list of shards a few MB
MAX_RECIPE_VALUES = 1_000_000  # scalars, lists and mappings, every alias counted as a copy of what it names


def read_file(path: str | Path) -> dict[str, Any]:
    """A YAML (``.yaml``/``.yml``) or JSON recipe file as a mapping (``ValueError`` naming the file if not)."""
    path = Path(path)
    where = f"--config {shown(str(path))}"
    if not path.is_file():
        raise ValueError(f"--config: no such file {shown(str(path))}")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise ValueError(f"{where} is {size:,} bytes; a recipe file is at most {MAX_RECIPE_BYTES:,} bytes")
    if path.suffix not in (".yaml", ".yml"):
        data = read_json(path, "--config")
    else:
        text = read_text(path, "--config")
        try:
            data = _load_yaml(text, where)
        except _AliasError:
            raise
        except Exception as e:  # a parse error (PyYAML raises several kinds)
            detail = shown(str(e).splitlines()[0] if str(e) else type(e).__name__)
            raise ValueError(f"{where}: not valid yaml: {detail}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a mapping of sections, got a {type(data).__name__}")
    return data


class _AliasError(ValueError):
    """A YAML document whose aliases expand past ``MAX_RECIPE_VALUES``, or refer to themselves."""


def _load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``, refusing a document that holds more than ``MAX_RECIPE_VALUES`` values once its
    aliases are expanded (an alias bomb: a few hundred bytes, billions of values) before anything is built.

    Aliases are allowed (``lr: &lr 1e-3`` ... ``*lr`` is ordinary YAML) but bounded: the parsed graph shares
    each anchored value, and what costs memory and time is whatever later walks it as a tree (a message, a
    copy, a check of every item), so the tree's size is what is capped."""
    import yaml  # the train extra

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _tree_size(node, where) > MAX_RECIPE_VALUES:
            raise _AliasError(
                f"{where}: its aliases (*name) expand to more than {MAX_RECIPE_VALUES:,} values; "
                "write the values out or use fewer aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _tree_size(root: Any, where: str) -> int:
    """Number of nodes of the YAML node graph ``root`` counted as a tree (each alias as a copy of its anchor),
    computed once per distinct node (so in time linear in the text) and capped at ``MAX_RECIPE_VALUES + 1``."""
    import yaml

    def children(node: Any) -> list:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    sizes: dict[int, int] = {}
    entered: set[int] = set()  # nodes entered and not yet sized: the path from the root
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:  # iterative post-order: a deeply nested document must not exhaust the Python stack
        node, done = stack.pop()
        if done:
            entered.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children(node)), MAX_RECIPE_VALUES + 1)
        elif id(node) in entered:
            raise _AliasError(f"{where}: a recursive alias (a value that contains itself)")
        elif id(node) not in sizes:
            entered.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children(node))
    return sizes[id(root)]


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


# ---------------------------------------------------------------------------------------------- flags


def _flag_help(tp: Any, f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    default = default_of(f)
    base, _ = _split_annotated(tp)
    choices = [a for a in typing.get_args(base) if typing.get_origin(base) is Literal]
    parts = [text] if text else []
    parts.append(f"one of {', '.join(map(str, choices))}" if choices else describe(tp))
    parts.append("required" if default is dataclasses.MISSING else f"default: {default!r}")
    return "; ".join(parts).replace("%", "%%")


def _twin(flag: str) -> str:
    """``--batch-size`` ↔ ``--batch_size``, ``--data.batch_size`` ↔ ``--data.batch-size``: the same flag with the
    other word separator after its last dot."""
    head, dot, leaf = flag[2:].rpartition(".")
    return f"--{head}{dot}{leaf.replace('_', '-') if '_' in leaf else leaf.replace('-', '_')}"


def _spellings(*flags: str) -> list[str]:
    """Each flag and its twin (``_twin``), in order, once."""
    return list(dict.fromkeys(f for flag in flags for f in (flag, _twin(flag))))


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    dest: str = "recipe",
    aliases: FlagAliases | None = None,
) -> None:
    """One flag per leaf field of ``cls`` (see the module docstring), all defaulting to 'not given', with the
    ``aliases`` whose target is one of these leaves. A section of a command with ``help`` is its own ``--help``
    section (unless a leaf names its ``group``)."""
    aliases = aliases or {}
    types_ = hints(cls)
    titles = {
        f.name: f.metadata.get("help") or None
        for f in dataclasses.fields(cls)
        if dataclasses.is_dataclass(types_[f.name])
    }
    groups: dict[str, Any] = {}
    for name, tp, f in iter_leaves(cls):
        title = f.metadata.get("group") or (titles.get(name.split(".")[0]) if "." in name else None)
        if title is not None and title not in groups:
            groups[title] = parser.add_argument_group(title)
        target = parser if title is None else groups[title]
        base, _ = _split_annotated(tp)
        inner = [a for a in typing.get_args(base) if a is not type(None)] if _is_union(base) else [base]
        inner = [_split_annotated(a)[0] for a in inner]
        kind: dict[str, Any] = {}
        if inner == [bool]:
            kind = {"nargs": "?", "const": "true", "metavar": "BOOL"}
        elif any(typing.get_origin(a) is list for a in inner):
            kind = {"nargs": "+", "action": "extend", "metavar": "VALUE"}
        else:
            kind = {"metavar": name.rsplit(".", 1)[-1].upper()}
        own = f"--{name.replace('_', '-')}" if dest == "command" and "." not in name else f"--{name}"  # --like-this
        old = [flag for flag, to in aliases.items() if to == name]
        required = default_of(f) is dataclasses.MISSING
        key = f"{dest}:{name}"
        target.add_argument(
            *_spellings(own, *old), dest=key, default=None, required=required, help=_flag_help(tp, f), **kind
        )
        for flag, (_, value) in ((k, v) for k, v in aliases.items() if isinstance(v, tuple) and v[0] == name):
            shown_value = str(value).lower() if isinstance(value, bool) else value
            target.add_argument(
                *_spellings(flag),
                dest=key,
                action="store_const",
                const=value,
                default=None,
                help=f"the same as {own} {shown_value}".replace("%", "%%"),
            )


def parse_flag(raw: str | list[str], tp: Any, name: str) -> Any:
    """A flag's text (a list of texts for a list flag) → a value of ``tp`` (checked later by ``check``)."""
    base, _ = _split_annotated(tp)
    args = [a for a in typing.get_args(base) if a is not type(None)] if _is_union(base) else [base]
    args = [_split_annotated(a)[0] for a in args]
    if isinstance(raw, list):
        parts = [p.strip() for text in raw for p in text.split(",") if p.strip()]
        lists = [a for a in args if typing.get_origin(a) is list]
        if not lists:  # a list flag of a non-list field cannot happen (nargs follows the type)
            return parse_flag(",".join(parts), tp, name)
        if len(parts) == 1 and str in args:  # str | list[str]: one value stays a string
            return parts[0]
        (item,) = typing.get_args(lists[0]) or (str,)
        return [parse_flag(p, item, name) for p in parts]
    text = raw
    if type(None) in typing.get_args(base) and text.strip().lower() in _NONE:
        return None
    if args == [bool]:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"--{name} expects true/false, got {shown(text)}")
    for arg in args:
        if typing.get_origin(arg) is Literal:  # choices may be numbers (run.zero_stage)
            for choice in typing.get_args(arg):
                if str(choice) == text:
                    return choice
        if arg in (int, float):
            try:
                return arg(text)
            except ValueError:
                continue
    return text


def flag_values(args: argparse.Namespace, cls: type, dest: str = "recipe") -> dict[str, Any]:
    """``{dotted name: value}`` of the flags that were given."""
    found = {}
    types_ = {name: tp for name, tp, _ in iter_leaves(cls)}
    for key, raw in vars(args).items():
        if key.startswith(f"{dest}:") and raw is not None:
            name = key.split(":", 1)[1]  # a value an alias sets (not text) is taken as it is
            found[name] = parse_flag(raw, types_[name], name) if isinstance(raw, (str, list)) else raw
    return found


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def load_recipe(
    cls: type[T],
    path: str | Path | None,
    args: argparse.Namespace | None = None,
    base: dict[str, Any] | None = None,
    dest: str = "recipe",
    adjust: Callable[[T], Any] | None = None,
) -> T:
    """Dataclass defaults ← ``base`` ← YAML/JSON file ← flags, then ``check``, ``adjust(recipe)`` (what a command
    changes on top, e.g. a loss variant) and the recipe's ``validate``: each rule runs once, on the final recipe."""
    data = _merge(base or {}, read_file(path) if path is not None else {})
    if args is not None:
        data = _merge(data, _nest(flag_values(args, cls, dest)))
    recipe = from_dict(cls, data, where=str(path) if path is not None else "recipe")
    built_checked = isinstance(recipe, CheckedConfig)  # then it checked and validated itself when built
    if not built_checked:
        check(recipe)
    if adjust is not None:
        adjust(recipe)
    validate = getattr(recipe, "validate", None)
    if callable(validate) and not built_checked:
        validate()
    return recipe


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--label.batch_size, --batch-size BATCH_SIZE``: each spelling of a flag once (not its ``_``/``-`` twin),
    the value's name once."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        seen: set[str] = set()
        shown_ = []
        for flag in action.option_strings:
            if flag.replace("_", "-") not in seen:
                seen.add(flag.replace("_", "-"))
                shown_.append(flag)
        if action.nargs == 0:
            return ", ".join(shown_)
        return f"{', '.join(shown_)} {self._format_args(action, self._get_default_metavar_for_optional(action))}"


def _target(alias: str | tuple[str, Any]) -> str:
    """The dotted field an entry of ``FLAG_ALIASES`` sets."""
    return alias[0] if isinstance(alias, tuple) else alias


def _leaf_names(cls: type | None) -> set[str]:
    return set() if cls is None else {name for name, _, _ in iter_leaves(cls)}


def build_parser(
    prog: str,
    description: str | None,
    command: type | None = None,
    recipe: type | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """A parser for a command: its own options (``command``: its fields and the library configs it nests) with
    the old spellings of its ``FLAG_ALIASES`` and, for trainers, every field of its ``recipe`` as a flag (an
    alias may name a recipe field: ``--output-dir`` → ``run.output_dir``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, formatter_class=_HelpFormatter)
    aliases: FlagAliases = dict(getattr(command, "FLAG_ALIASES", {}))
    own, fields_ = _leaf_names(command), _leaf_names(recipe)
    for flag, to in aliases.items():
        name = _target(to)
        if name not in own | fields_ or (name in own and name in fields_):
            raise ValueError(
                f"{prog}: FLAG_ALIASES[{flag!r}] must name one field of the command or its recipe, not {name!r}"
            )
    if command is not None:
        add_arguments(parser, command, "command", {k: v for k, v in aliases.items() if _target(v) in own})
    if recipe is not None:
        group = parser.add_argument_group(
            "recipe fields (override the --config file; lists: several values or comma-separated)"
        )
        add_arguments(group, recipe, "recipe", {k: v for k, v in aliases.items() if _target(v) in fields_})
    # The `deepspeed` launcher passes --local_rank; the rank is read from the environment (LOCAL_RANK).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def parse_command(
    parser: argparse.ArgumentParser, command: type[T], argv: Sequence[str] | None = None
) -> tuple[T, argparse.Namespace]:
    """Parse ``argv`` → (the checked ``command`` options, the namespace for ``load_recipe``); a bad value exits
    with the parser's usage error naming the flag."""
    args = parser.parse_args(argv)
    try:
        return load_recipe(command, None, args, dest="command"), args
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits
