"""Box text: the renderer writes what the parser reads; malformed text yields no box, never an error."""

from __future__ import annotations

import pytest
import torch

from loclip.encoder import box_text, boxes
from loclip.encoder.box_text import parse_boxes, render_box, render_box_list, render_boxes


def _bins(*rows: list[int]) -> list[list[float]]:
    return boxes.from_bins(torch.tensor(rows)).tolist()


GOOD = [
    ("[0, 0, 999, 999]", _bins([0, 0, 999, 999])),
    ("[12,34,56,78]", _bins([12, 34, 56, 78])),
    ("  [ 12 ,34,\t56 ,78 ] ", _bins([12, 34, 56, 78])),
    ("[5, 5, 5, 5]", _bins([5, 5, 5, 5])),  # a degenerate box is still a box
    ("The star is at [1, 2, 3, 4] and the ring at [5, 6, 7, 8].", _bins([1, 2, 3, 4], [5, 6, 7, 8])),
    ("[1, 2, 3, 4][5, 6, 7, 8]", _bins([1, 2, 3, 4], [5, 6, 7, 8])),
    ("[1, 2, 3, 4], [bad], [1000, 0, 5, 5], [5, 6, 7, 8]", _bins([1, 2, 3, 4], [5, 6, 7, 8])),  # bad ones skipped
]

MALFORMED = [
    "",
    "no boxes here",
    "[1000, 0, 5, 5]",  # over 999
    "[1, 2, 3]",  # too few
    "[1, 2, 3, 4, 5]",  # too many
    "[5, 0, 4, 9]",  # x2 < x1
    "[0, 9, 5, 3]",  # y2 < y1
    "[-1, 0, 5, 5]",
    "[0.5, 0, 5, 5]",
    "[1e2, 0, 5, 5]",
    "[0001, 2, 3, 4]",  # more than three digits
    "[a, b, c, d]",
    "[1, 2, 3, 4",  # unclosed
    "1, 2, 3, 4",
    "[1,, 2, 3, 4]",
    "[1 2 3 4]",
    "[\u0663, 0, 5, 5]",  # a non-ASCII digit
    "[" + "9" * 5000 + ", 0, 0, 0]",  # int() of this would raise in Python >= 3.11
]


@pytest.mark.parametrize("text, expected", GOOD)
def test_parse_good(text: str, expected: list[list[float]]) -> None:
    assert parse_boxes(text) == expected  # same from_bins arithmetic: exactly equal


@pytest.mark.parametrize("text", MALFORMED)
def test_parse_malformed_gives_no_box(text: str) -> None:
    assert parse_boxes(text) == []


@pytest.mark.parametrize("value", [None, 12, b"[1, 2, 3, 4]", ["[1, 2, 3, 4]"]])
def test_parse_non_string_gives_no_box(value: object) -> None:
    assert parse_boxes(value) == []  # type: ignore[arg-type]


def test_render_format() -> None:
    assert render_box([0.0, 0.0, 1.0, 1.0]) == "[0, 0, 999, 999]"
    assert render_box(torch.tensor([0.1, 0.25, 0.5, 0.75])) == "[100, 250, 500, 749]"
    assert render_boxes([[0, 0, 1, 1], [0, 0, 0, 0]]) == "[0, 0, 999, 999], [0, 0, 0, 0]"
    assert render_box_list([[0, 0, 1, 1], [0, 0, 0, 0]]) == ["[0, 0, 999, 999]", "[0, 0, 0, 0]"]


def test_round_trip_within_half_a_bin() -> None:
    g = torch.Generator().manual_seed(0)
    lo, hi = torch.rand(50, 2, generator=g), torch.rand(50, 2, generator=g)
    b = torch.cat([torch.minimum(lo, hi), torch.maximum(lo, hi)], dim=1)
    back = torch.tensor(parse_boxes(render_boxes(b)))
    assert back.shape == (50, 4)
    assert (back - b).abs().max() <= 0.5 / 999 + 1e-6


@pytest.mark.parametrize("bad", [[0.0, 0.0, 1.5, 1.0], [0.6, 0.0, 0.5, 1.0], [float("nan"), 0, 1, 1]])
def test_render_rejects_invalid_boxes(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        render_box(bad)


def test_render_box_wants_one_box() -> None:
    with pytest.raises(ValueError, match="shape"):
        render_box([[0.0, 0.0, 1.0, 1.0]])


@pytest.mark.parametrize(
    "text, expected_text, expected_bins",
    [
        ("[1, 2, 3, 4]", "<g>", [[1, 2, 3, 4]]),
        ("at [1,2,3,4] and [ 5 , 6 , 7 , 8 ].", "at <g> and <g>.", [[1, 2, 3, 4], [5, 6, 7, 8]]),
        ("bad [1, 2, 3] and [9, 9, 1, 1] stay", "bad [1, 2, 3] and [9, 9, 1, 1] stay", []),
        ("no boxes", "no boxes", []),
    ],
)
def test_boxes_to_placeholder(text: str, expected_text: str, expected_bins: list[list[int]]) -> None:
    replaced, found = box_text.boxes_to_placeholder(text, "<g>")
    assert replaced == expected_text
    assert found == (boxes.from_bins(torch.tensor(expected_bins)).tolist() if expected_bins else [])


def test_fill_placeholders_round_trips_and_checks_counts() -> None:
    text = "a red square [100, 200, 300, 400], then [5, 6, 7, 8]"
    replaced, found = box_text.boxes_to_placeholder(text, "<g>")
    assert box_text.fill_placeholders(replaced.split("<g>"), found) == text
    assert box_text.fill_placeholders(["", ""], [[0.0, 0.0, 0.5, 0.5]]) == box_text.render_box([0.0, 0.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="^boxes_norm: 3 text pieces need 2 boxes, got 1"):
        box_text.fill_placeholders(["a", "b", "c"], [[0.0, 0.0, 0.5, 0.5]])


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (None, TypeError, "box_norm must be a tensor or nested sequence of numbers, got None"),  # RuntimeError
        ([10**400, 0, 0, 0], ValueError, "box_norm holds a number past float's range"),  # torch's error, no field
        ("abcd", TypeError, "box_norm must be a tensor"),  # torch's own TypeError
        ([0.0, 0.0, 1.5, 1.0], ValueError, r"box_norm must be normalised xyxy in \[0, 1\]"),  # named boxes_norm
    ],
)
def test_render_box_names_box_norm(value, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        render_box(value)


@pytest.mark.parametrize(
    ("pieces", "value", "error", "match"),
    [
        (["a", "b"], None, TypeError, "boxes_norm must be a tensor or nested sequence"),  # torch's TypeError
        (["a", "b"], [0.0, 0.0, 1.0], ValueError, r"boxes_norm must have shape \[\.\.\., 4\]"),  # reshape error
        (["a", "b", "c"], [[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]], ValueError, r"got \(1, 8\)"),  # read as 2 boxes
        ("ab", [[0.0, 0.0, 1.0, 1.0]], TypeError, "pieces must be a list of str"),  # the string's letters were pieces
        ([None, "b"], [[0.0, 0.0, 1.0, 1.0]], TypeError, "pieces must be a list of str"),  # AttributeError
    ],
)
def test_fill_placeholders_names_what_is_wrong(pieces, value, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        box_text.fill_placeholders(pieces, value)


def test_boxes_to_placeholder_wants_text_and_a_placeholder() -> None:
    with pytest.raises(TypeError, match="placeholder must be a str, got None"):
        box_text.boxes_to_placeholder("[1, 2, 3, 4]", None)  # the box silently vanished from the text
    with pytest.raises(ValueError, match="placeholder must not be empty"):
        box_text.boxes_to_placeholder("[1, 2, 3, 4]", "")
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        box_text.boxes_to_placeholder(b"[1, 2, 3, 4]", "<g>")  # re's TypeError, naming no field
