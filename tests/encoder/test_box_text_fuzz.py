"""Property-based tests of boxes written as text (``loclip.encoder.box_text``).

The parser reads model generations: on any text (any unicode, brackets nested or unclosed, numbers like 10^400,
negative or over 999) it returns the well-formed ``[x1, y1, x2, y2]`` groups an independent scanner finds, or
nothing, never an exception, in time linear in the text. The renderer writes what the parser reads back, and
refuses malformed boxes with a ``ValueError``/``TypeError`` naming the field. CI runs the derandomised "ci"
profile of tests/conftest.py; ``LOCLIP_FUZZ=long`` explores 20,000 examples per property.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from loclip.encoder import boxes
from loclip.encoder.box_text import (
    boxes_to_placeholder,
    fill_placeholders,
    parse_boxes,
    render_box,
    render_box_list,
    render_boxes,
)

DIGITS = "0123456789"


def reference_parse(text: str) -> list[list[int]]:
    """The parser's contract as a plain scanner (no regex) giving bins: a group is ``[`` … ``]`` with no bracket
    inside, holding four comma-separated runs of 1-3 ASCII digits (spaces around them allowed) with x1 <= x2 and
    y1 <= y2; anything else is no box."""
    found, start = [], text.find("[")
    while start >= 0:
        end = start + 1
        while end < len(text) and text[end] not in "[]":
            end += 1
        if end == len(text):
            break
        if text[end] == "]":
            parts = [p.strip() for p in text[start + 1 : end].split(",")]
            if len(parts) == 4 and all(1 <= len(p) <= 3 and all(c in DIGITS for c in p) for p in parts):
                x1, y1, x2, y2 = (int(p) for p in parts)
                if x1 <= x2 and y1 <= y2:
                    found.append([x1, y1, x2, y2])
        start = text.find("[", end)
    return found


# Pieces that make parsers stumble: brackets, separators, signs, exponents, huge and over-999 numbers,
# non-ASCII digits and spaces.
number_text = st.one_of(
    st.integers(-2000, 2000).map(str),
    st.integers(0, 999).map(str),
    st.just("1" + "0" * 400),
    st.just("-0"),
    st.just("0001"),
    st.just("1e2"),
    st.just("0.5"),
    st.just("\u0663"),
    st.just("\uff11"),
    st.just(""),
    st.just(" 12 "),
    st.just("\t5\n"),
    st.just("\u20037\u2003"),
)
group_text = st.lists(number_text, max_size=6).map(lambda ns: "[" + ",".join(ns) + "]")
fragments = st.one_of(
    group_text,
    number_text,
    st.sampled_from(["[", "]", ",", " ", "[[", "]]", "-", "e", "\x00", "\ud800", "\U0001f600", "\n"]),
    st.text(max_size=5),
)
texts = st.one_of(st.text(), st.text(alphabet="[], 0123456789-"), st.lists(fragments, max_size=12).map("".join))


def as_bins(found: Any) -> list[list[int]]:
    """The parser's answer checked to be normalised model-frame boxes ([0, 1], ordered, each corner a bin / 999)
    → their bins."""
    assert isinstance(found, list)
    for box in found:
        assert isinstance(box, list) and len(box) == 4 and all(isinstance(v, float) for v in box)
        assert all(0.0 <= v <= 1.0 for v in box) and box[0] <= box[2] and box[1] <= box[3]
        assert all(abs(v * 999 - round(v * 999)) < 1e-3 for v in box)
    return [[round(v * 999) for v in box] for box in found]


@given(text=texts)
@example(text="[[1, 2, 3, 4]]").via("nested brackets: the inner group is a box")
@example(text="[" + "9" * 5000 + ", 0, 0, 0]").via("int() of over 4300 digits raises in Python >= 3.11")
@example(text="[1\u0663, 0, 5, 5]").via("a non-ASCII digit")
def test_parser_finds_what_a_plain_scanner_finds(text: str) -> None:
    assert as_bins(parse_boxes(text)) == reference_parse(text)


@given(
    value=st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.binary(),
        st.lists(st.text(max_size=3)),
        st.just(b"[1, 2, 3, 4]"),
        st.just(["[1, 2, 3, 4]"]),
    )
)
def test_parser_gives_no_box_for_what_is_not_text(value: Any) -> None:
    assert parse_boxes(value) == []


def normalised_boxes(max_boxes: int = 6) -> st.SearchStrategy[list[list[float]]]:
    """Valid model-frame boxes: corners in [0, 1] (the edges, half-bin ties and tiny values drawn often)."""
    v = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 0.5 / 999, 0.5, 998.5 / 999, 1e-30]))

    def box(c: tuple[float, float, float, float]) -> list[float]:
        return [min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])]

    return st.lists(st.tuples(v, v, v, v).map(box), max_size=max_boxes)


@given(found=normalised_boxes(), dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]))
def test_parse_of_render_round_trips(found: list[list[float]], dtype: torch.dtype) -> None:
    """parse(render(boxes)) gives back the boxes to the bin, which is within half a bin of the original."""
    t = torch.tensor(found, dtype=dtype).reshape(-1, 4)
    back = parse_boxes(render_boxes(t))
    binned = boxes.from_bins(boxes.to_bins(t)).tolist()
    assert back == binned
    assert all(
        abs(a - b) <= 0.5 / 999 + 1e-3 * (dtype == torch.float16) + 1e-6
        for got, want in zip(back, t.double().tolist())
        for a, b in zip(got, want)
    )
    assert [parse_boxes(s) for s in render_box_list(t)] == [[b] for b in binned]


@given(
    found=normalised_boxes(),
    noise=st.lists(st.text().map(lambda s: s.replace("[", "(").replace("]", ")")), min_size=7, max_size=7),
)
def test_boxes_in_prose_are_found_in_order(found: list[list[float]], noise: list[str]) -> None:
    """Rendered boxes in any surrounding text without brackets are all found, in order."""
    rendered = render_box_list(found)
    text = noise[0] + "".join(box + noise[(i + 1) % 7] for i, box in enumerate(rendered))
    assert parse_boxes(text) == boxes.from_bins(boxes.to_bins(found)).tolist()


PLACEHOLDER = "\x00G\x00"


@given(text=texts)
def test_placeholders_hold_what_the_parser_finds(text: str) -> None:
    """boxes_to_placeholder takes out exactly the parser's boxes; filling them back in gives them again."""
    assume(PLACEHOLDER not in text)
    replaced, found = boxes_to_placeholder(text, PLACEHOLDER)
    assert found == parse_boxes(text)
    pieces = replaced.split(PLACEHOLDER)
    assert len(pieces) == len(found) + 1
    assert parse_boxes(fill_placeholders(pieces, found)) == found


# --- the renderer on malformed input: a result or an error naming the field --------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.just(10**400),
    st.floats(),
    st.text(max_size=4),
    st.complex_numbers(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 1000.0]),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.tuples(inner, inner, inner, inner)),
    max_leaves=20,
)


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(
        st.one_of(
            st.lists(st.integers(0, 3), max_size=2).map(lambda s: (*s, 4)),
            st.lists(st.integers(0, 4), max_size=3).map(tuple),
        )
    )
    values = draw(
        st.lists(st.one_of(st.floats(-2, 2), st.floats()), min_size=math.prod(shape), max_size=math.prod(shape))
    )
    dtype = draw(
        st.sampled_from(
            [
                torch.float32,
                torch.float64,
                torch.float16,
                torch.bfloat16,
                torch.int64,
                torch.uint8,
                torch.bool,
                torch.complex64,
                torch.float8_e4m3fn,
            ]
        )
    )
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)


box_inputs = st.one_of(
    junk,
    tensors(),
    st.lists(st.lists(st.floats(-0.5, 1.5), min_size=4, max_size=4), max_size=3),
    st.just(np.ones((2, 4), dtype=np.complex64)),
)


def result_or_named_error(call: Callable[[], Any], field: str) -> Any:
    try:
        return call()
    except (ValueError, TypeError) as e:
        assert str(e).startswith(field), f"the message does not start with {field!r}: {e}"
        assert len(str(e)) < 600
        return None


@given(value=box_inputs)
@example(value=None).via("RuntimeError: could not infer dtype")
@example(value=[10**400, 0, 0, 0]).via("torch's overflow error, not naming the field")
@example(value="abcd").via("torch's own TypeError, not naming the field")
def test_render_box_gives_text_or_a_named_error(value: Any) -> None:
    out = result_or_named_error(lambda: render_box(value), "box_norm")
    if out is not None:
        assert parse_boxes(out) == boxes.from_bins(boxes.to_bins(value)).reshape(-1, 4).tolist()


@given(value=box_inputs)
def test_render_boxes_gives_text_or_a_named_error(value: Any) -> None:
    out = result_or_named_error(lambda: render_boxes(value), "boxes_norm")
    if out is not None:
        assert len(parse_boxes(out)) == boxes.as_float_boxes(value, "boxes_norm").reshape(-1, 4).shape[0]


@given(value=box_inputs, gaps=st.integers(0, 4))
@example(value=None, gaps=1).via("TypeError from torch naming no field")
@example(value=[[0, 0, 1, 1, 0, 0, 1, 1]], gaps=2).via("one row of eight numbers was read as two boxes")
@example(value=[0, 0, 1], gaps=1).via("RuntimeError from reshape")
def test_fill_placeholders_gives_text_or_a_named_error(value: Any, gaps: int) -> None:
    pieces = ["a"] + [f" piece {i} " for i in range(gaps)]
    out = result_or_named_error(lambda: fill_placeholders(pieces, value), "boxes_norm")
    if out is not None:
        assert boxes.as_float_boxes(value, "boxes_norm").reshape(-1, 4).shape[0] == gaps
        assert len(parse_boxes(out)) == gaps


@given(
    text=st.one_of(st.none(), st.integers(), st.binary(), st.text()),
    placeholder=st.one_of(st.none(), st.integers(), st.text(min_size=1), st.just("")),
)
@example(text="[1, 2, 3, 4]", placeholder=None).via("the box silently vanished")
@example(text=b"[1, 2, 3, 4]", placeholder="<g>").via("re's TypeError naming no field")
def test_boxes_to_placeholder_refuses_what_is_not_text(text: Any, placeholder: Any) -> None:
    field = "text" if not isinstance(text, str) else "placeholder"
    out = result_or_named_error(lambda: boxes_to_placeholder(text, placeholder), field)
    if out is not None:
        assert isinstance(text, str) and isinstance(placeholder, str) and placeholder


# --- time linear in the text: a 100 kB adversarial string is read at once --------------------------------------

N = 100_000
ADVERSARIAL = {
    "open brackets": "[" * N,
    "close brackets": "]" * N,
    "unclosed group": "[" + "1, " * (N // 3),
    "one huge group": "[" + "1," * (N // 2) + "]",
    "nested": "[" * (N // 2) + "1, 2, 3, 4" + "]" * (N // 2),
    "many unclosed groups": "[1, 2, 3, 4" * (N // 10),
    "many boxes": "[1, 2, 3, 4]" * (N // 12),
    "a huge number": "[" + "9" * N + ", 0, 0, 0]",
    "spaces": "[" + " " * N + "1, 2, 3, 4]",
    "commas": "[" + "," * N + "]",
    "unicode": "[\u0663\U0001f600, " * (N // 5),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_100kb_text_is_read_in_linear_time(name: str) -> None:
    """No regex blow-up: a generous bound (2 s for 100 kB; the reading takes milliseconds)."""
    text = ADVERSARIAL[name]
    start = time.perf_counter()
    found = parse_boxes(text)
    replaced, taken = boxes_to_placeholder(text, "<g>")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"
    assert found == taken and as_bins(found) == reference_parse(text)
