"""Property-based tests of what ``/ask`` checks before the model runs: for any JSON a client can send (random,
malformed, huge numbers, deep nesting), each check returns a result or raises ``DemoInputError`` (or, for the chat
prompt's own rules, another ``ValueError`` of one short line), never another exception, and what it returns is what
the next step expects."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from loclip.demo.backend import ChatAnswer, ChatBackend
from loclip.demo.limits import (
    DemoInputError,
    HistoryTurn,
    Limits,
    check_boxes,
    check_text,
    json_list,
    parse_boxes,
    parse_history,
)
from loclip.mllm.conversation import ensure_tokens
from loclip.synth import build_tokenizer

LIMITS = Limits(max_pixels=200 * 200, max_boxes=3, max_text_chars=40, max_turns=4)
WIDTH, HEIGHT = 120, 90

numbers = (
    st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.sampled_from([0, 1, WIDTH, HEIGHT, -1, 1e400, -0.0])
)
tokens = st.sampled_from(["<region>", "<image>", "<ground>", "USER:", "ASSISTANT:", "<eos>", "[1, 2, 3, 4]", "\x00"])
texts = st.lists(tokens | st.text(max_size=8), max_size=6).map("".join)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=4), max_leaves=30
)
boxes_like = st.lists(st.lists(numbers, min_size=3, max_size=5) | json_values, max_size=5)
turn_like = st.fixed_dictionaries(
    {"question": texts | json_values, "answer": texts | json_values},
    optional={"question_boxes": boxes_like | json_values, "answer_boxes": boxes_like | json_values},
)
history_like = st.lists(turn_like | json_values, max_size=6)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def as_sent(value: object) -> st.SearchStrategy:
    """The value as a client sends it: itself, or as JSON text (when it has a JSON form)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return st.just(value)
    return st.sampled_from([value, text])


@given(json_values.flatmap(as_sent) | st.integers(1, 3000).map(lambda d: "[" * d + "]" * d))
def test_json_list_gives_a_list_or_a_demo_error(value) -> None:
    try:
        out = json_list(value, "field", "a list")
    except DemoInputError as e:
        assert str(e).startswith("field ")
    else:
        assert isinstance(out, (list, tuple))


@given((boxes_like | json_values).flatmap(as_sent) | st.integers(100, 3000).map(nested))
def test_parse_boxes_then_check_boxes_give_boxes_or_a_demo_error(value) -> None:
    try:
        boxes = check_boxes(parse_boxes(value), LIMITS)
    except DemoInputError as e:
        assert len(str(e)) < 400  # the value is quoted cut short
    else:
        assert len(boxes) <= LIMITS.max_boxes
        for x1, y1, x2, y2 in boxes:
            finite = all(math.isfinite(v) for v in (x1, y1, x2, y2))
            assert not finite or (x1 < x2 and y1 < y2)  # a box that is not finite is the box rule's to refuse


@given(texts | json_values)
def test_check_text_gives_bounded_text_or_a_demo_error(value) -> None:
    try:
        text = check_text(value, "question", LIMITS)
    except DemoInputError:
        return
    assert isinstance(text, str) and 0 < len(text) <= LIMITS.max_text_chars and text == text.strip()


def stub_backend() -> ChatBackend:
    """A chat backend without a model: what it checks before generating needs its limits and its processor's
    tokenizer and template (the special tokens no user text may hold)."""
    tokenizer = build_tokenizer()
    ensure_tokens(tokenizer, "plain")
    backend = ChatBackend.__new__(ChatBackend)
    backend.limits, backend.processor = LIMITS, SimpleNamespace(tokenizer=tokenizer, template="plain")
    return backend


BACKEND = stub_backend()


def inside(box: tuple[float, ...] | list[float]) -> bool:
    return 0 <= box[0] <= box[2] <= WIDTH and 0 <= box[1] <= box[3] <= HEIGHT


@settings(deadline=None)  # the tokenizer reads each text
@given(history_like.flatmap(as_sent), texts | json_values, boxes_like, st.sampled_from(["append", "ignore", "drop"]))
def test_history_question_and_boxes_are_checked_before_generating(history, question, boxes, unused) -> None:
    """What ``chat`` receives is one ``ChatPrompt``, built once: one box per ``<region>``, each on the image."""
    try:
        turns = parse_history(history, LIMITS)
        earlier = [ChatAnswer(*turn) for turn in turns]
        prompt = BACKEND.prompt((HEIGHT, WIDTH), question, parse_boxes(boxes), earlier, unused)
    except ValueError as e:  # DemoInputError, or the prompt's own rules (also ValueErrors): one short line
        assert len(str(e)) < 400 and "\n" not in str(e)
        return
    assert all(isinstance(t, HistoryTurn) for t in turns) and len(turns) < LIMITS.max_turns
    assert prompt.question.count("<region>") == len(prompt.boxes) and "<image>" not in prompt.question
    assert all(inside(b) for b in prompt.boxes)
    for turn in prompt.history:
        assert turn.question.count("<region>") == len(turn.boxes) and all(inside(b) for b in turn.boxes)
