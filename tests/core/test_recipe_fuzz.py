"""Fuzzing the recipe checker: whatever a user writes in a recipe file or on the command line, ``check_value``,
``check``, ``from_dict``, ``load_recipe`` and ``parse_flag`` give a result or a ``ValueError`` whose message
stays about a line long, never another exception. The ``@example``s are the inputs that once broke a rule."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from loclip.core.recipe import (
    PositiveFloat,
    PositiveInt,
    UnitFloat,
    at_least,
    check,
    check_value,
    from_dict,
    load_recipe,
    parse_flag,
)

MESSAGE_LIMIT = 400  # characters; values are quoted through shown(), cut to about 80

TYPES: list[Any] = [
    bool,
    int,
    float,
    str,
    dict,
    PositiveInt,
    PositiveFloat,
    UnitFloat,
    Annotated[int, at_least(0)],
    Literal["fp32", "bf16"],
    Literal[0, 1, 2, 3],
    list[str],
    list[int],
    list[PositiveFloat],
    str | None,
    PositiveInt | None,
    str | list[str] | None,
    Literal["a"] | Literal["b"] | None,
    bool | None,
    Any,
]

HUGE_INT = 10**400  # beyond the float range: float() raises OverflowError
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([HUGE_INT, -HUGE_INT, 2**63, 0, -1])
    | st.floats()
    | st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0])
    | st.text()
    | st.text(alphabet="0123456789.e-+_ naifINF", max_size=30)
    | st.binary(max_size=20)
    | st.sampled_from(["x" * 100_000, "1e-3", " 1 ", "1_000", "nan", "inf", "true", "none", "\ud800", "١٢"])
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=5),
    max_leaves=20,
)


def deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def assert_short(error: ValueError) -> None:
    assert len(str(error)) < MESSAGE_LIMIT and "\n" not in str(error), str(error)[:2000]


@given(st.sampled_from(TYPES), values)
@example(float, HUGE_INT)  # OverflowError in float(); now "expected a number"
@example(PositiveFloat | None, HUGE_INT)
@example(float, ["lol" * 1000] * 1000)
def test_check_value_gives_a_value_or_a_short_value_error(tp: Any, value: Any) -> None:
    try:
        checked = check_value("field", value, tp)
    except ValueError as e:
        assert str(e).startswith("field")
        assert_short(e)
    else:  # a checked value is itself accepted again, unchanged (the conversion is idempotent)
        assert check_value("field", checked, tp) == checked


@dataclass
class Section:
    lr: PositiveFloat = 0.1
    steps: PositiveInt = 10
    mode: Literal["fp32", "bf16"] = "fp32"


@dataclass
class Recipe:
    name: str = "run"
    shards: str | list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    section: Section = field(default_factory=Section)


FIELDS = ("name", "shards", "seeds", "section", "lr", "steps", "mode", "other")
recipe_data = st.recursive(
    values,
    lambda inner: st.dictionaries(st.sampled_from(FIELDS) | st.integers() | st.none(), inner, max_size=4),
    max_leaves=12,
)


@given(recipe_data)
@example({1: "a", None: "b", "extra": "c"})  # mixed key types: listing unknown keys once raised TypeError
@example({"section": {"lr": HUGE_INT}})
@example({"section": ["x"] * 100_000})
def test_from_dict_then_check_gives_a_recipe_or_a_short_value_error(data: Any) -> None:
    try:
        recipe = check(from_dict(Recipe, data))
    except ValueError as e:
        assert_short(e)
    else:
        assert isinstance(recipe.section.lr, float) and math.isfinite(recipe.section.lr) and recipe.section.lr > 0
        assert isinstance(recipe.section.steps, int) and recipe.section.steps >= 1


@given(st.fixed_dictionaries({}, optional={f.name: values for f in dataclasses.fields(Section)}))
def test_check_on_any_field_values(assigned: dict[str, Any]) -> None:
    section = Section(**assigned)
    try:
        check(section)
    except ValueError as e:
        assert_short(e)
    else:
        assert type(section.lr) is float and type(section.steps) is int and section.mode in ("fp32", "bf16")


def _load_text(text: str, suffix: str) -> Recipe:
    with tempfile.TemporaryDirectory() as tmp:  # not tmp_path: one file per example
        path = Path(tmp) / f"recipe{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return load_recipe(Recipe, path)


@given(recipe_data, st.sampled_from([".yaml", ".json"]))
def test_load_recipe_of_any_written_structure(data: Any, suffix: str) -> None:
    try:
        text = yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data)
    except (TypeError, ValueError, yaml.YAMLError):  # not representable in that format (bytes in JSON, ...)
        return
    try:
        _load_text(text, suffix)
    except ValueError as e:
        assert_short(e)


@given(
    st.text(max_size=200) | st.text(alphabet="[]{}:-&*!|>'\"#%@`,? \n\tab1.", max_size=200),
    st.sampled_from([".yaml", ".json"]),
)
@example("a: &a [*a]\n", ".yaml")
@example("[" * 5000 + "]" * 5000, ".json")  # json's recursion limit: RecursionError, now "nests its JSON too deeply"
@example("optim: !!python/object/apply:os.system ['true']\n", ".yaml")
@example("name: !!binary aGVsbG8=\n", ".yaml")
@example("? [a, b]\n: c\n", ".yaml")
def test_load_recipe_of_any_text(text: str, suffix: str) -> None:
    try:
        _load_text(text, suffix)
    except ValueError as e:
        assert_short(e)


@given(st.sampled_from(TYPES), st.text(max_size=60) | st.lists(st.text(max_size=20), min_size=1, max_size=4))
@example(float, "1" * 5000)  # int() refuses over 4,300 digits; float() makes it inf, refused by check_value
@example(int, "1" * 5000)
@example(bool, "x" * 100_000)
def test_parse_flag_then_check_value(tp: Any, raw: str | list[str]) -> None:
    try:
        check_value("flag", parse_flag(raw, tp, "flag"), tp)
    except ValueError as e:
        assert_short(e)


def test_deeply_nested_values_give_a_short_message() -> None:
    # not an @example: Hypothesis itself recurses when it prints one
    for data in (deep(100_000), {"section": deep(100_000)}, {"seeds": [deep(100_000)]}):
        with pytest.raises(ValueError) as error:
            check(from_dict(Recipe, data))
        assert_short(error.value)


@pytest.mark.parametrize("tp", [float, PositiveFloat, PositiveFloat | None])
def test_a_huge_integer_for_a_float_names_the_field(tp: Any) -> None:
    with pytest.raises(ValueError, match=r"^lr = 1000000.*: expected a number"):
        check_value("lr", HUGE_INT, tp)
