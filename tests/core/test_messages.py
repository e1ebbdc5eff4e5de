"""``shown``: user values in messages are cut short, at a cost bounded by what is printed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loclip.core.messages import LIMIT, shown


def test_a_long_string_is_cut_and_its_length_said() -> None:
    text = shown("x" * 100_000)
    assert len(text) < LIMIT + 30
    assert text.endswith("(100,000 characters)")


@pytest.mark.parametrize("value", [{"lr": [1, 2.5, None]}, (5,), (), [()], {"a": (1, 2)}, "it's", b"\x00"])
def test_a_short_value_is_its_repr(value: object) -> None:
    assert shown(value) == repr(value)


def test_a_huge_shared_structure_costs_what_is_printed() -> None:
    # a YAML alias bomb: 9 levels of 9 references each, 387 million leaves reachable, a few hundred objects
    level: list = ["lol"] * 9
    for _ in range(9):
        level = [level] * 9
    start = time.perf_counter()
    text = shown(level)
    assert time.perf_counter() - start < 1.0  # the whole repr would take minutes and gigabytes
    assert len(text) <= LIMIT + 20 and text.endswith("(9 items)")


def test_deep_nesting_and_cycles_do_not_recurse_without_bound() -> None:
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    cycle: list = []
    cycle.append(cycle)
    assert shown(deep).startswith("[[[") and shown(cycle).startswith("[[[")


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text() | st.binary(),
        lambda inner: st.lists(inner) | st.tuples(inner) | st.dictionaries(st.text(), inner),
        max_leaves=50,
    )
)
def test_any_value_gives_a_bounded_string_and_a_short_one_its_repr(value: object) -> None:
    text = shown(value, limit=40)
    assert isinstance(text, str) and len(text) <= 40 + 30
    if len(repr(value)) <= 40:
        assert text == repr(value)
