"""``ChatPrompt``: a question about an image, after the conversation's earlier turns, checked once, when built.

It is what ``chat`` asks the model. Whoever takes the question from a user builds it (``ChatPrompt.build``):
``chat`` itself when given plain arguments, the demo once per request; ``chat`` then checks none of it again.
What ``build`` checks, each rule through its one owner:

- text a user typed or sent back holds no special token of the conversation format
  (``conversation.check_user_text``), and ``<image>`` only opens the first question, once;
- one pixel box per ``<region>``, in order (``conversation.check_region_count``);
- every box lies on the image, give or take 1 px, and is clipped to it (``loclip.encoder.boxes.check_pixel_box``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loclip.encoder.boxes import height_width, pixel_box_in_image

from .conversation import IMAGE_TOKEN, REGION_TOKEN, check_region_count, check_user_text

Box = tuple[float, float, float, float]  # pixel xyxy of the conversation's image


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of the conversation: ``question`` as it was asked (one ``<region>`` per box),
    ``boxes`` in pixels of the conversation's image, and ``answer`` as ``chat`` returned it."""

    question: str
    answer: str
    boxes: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class ChatPrompt:
    """A checked question: ``question`` with one ``<region>`` per box of ``boxes`` (pixel xyxy of the image, in
    order, clipped to it), ``size`` the image's (height, width), ``history`` the earlier turns, checked the same
    way (their boxes clipped too). Build it with ``ChatPrompt.build``."""

    question: str
    boxes: tuple[Box, ...]
    size: tuple[int, int]
    history: tuple[Turn, ...] = ()

    @classmethod
    def build(
        cls,
        processor: Any,
        size: tuple[int, int],
        question: str,
        boxes: Sequence[Sequence[float]] = (),
        history: Sequence[Turn] = (),
    ) -> ChatPrompt:
        """Check ``question``, its pixel ``boxes`` and the earlier turns ``history`` for an image of
        ``size=(height, width)``, with ``processor``'s tokenizer and template (whose special tokens no user text
        may hold). ``ValueError`` naming ``question``, ``boxes[k]``, ``history[i].question`` /
        ``.answer`` / ``.boxes[k]``."""
        size = height_width(size)
        turns = []
        for i, turn in enumerate(history):
            where = f"history[{i}]"
            asked = _checked_question(processor, turn.question, f"{where}.question", first=i == 0)
            check_user_text(processor.tokenizer, turn.answer, f"{where}.answer", processor.template)
            own = _checked_boxes(turn.boxes, asked, size, f"{where}.question", f"{where}.boxes")
            turns.append(Turn(asked, turn.answer, [list(b) for b in own]))
        asked = _checked_question(processor, question, "question", first=not turns)
        return cls(asked, _checked_boxes(boxes, asked, size, "question", "boxes"), size, tuple(turns))

    def all_boxes(self) -> list[list[float]]:
        """Every turn's boxes and then the question's, in ``<region>`` order of the whole conversation."""
        return [list(b) for turn in self.history for b in turn.boxes] + [list(b) for b in self.boxes]


def _checked_question(processor: Any, text: str, where: str, first: bool) -> str:
    """A question's text: no special token but ``<region>`` and ``<image>``, and ``<image>`` once, first only."""
    check_user_text(processor.tokenizer, text, where, processor.template, (REGION_TOKEN, IMAGE_TOKEN))
    if IMAGE_TOKEN in text and not first:
        raise ValueError(f"{where} has {IMAGE_TOKEN}: the image belongs to the first question only")
    if text.count(IMAGE_TOKEN) > 1:
        raise ValueError(f"{where} has {text.count(IMAGE_TOKEN)} {IMAGE_TOKEN} tokens: there is one image")
    return text


def _checked_boxes(
    boxes: Sequence[Sequence[float]], text: str, size: tuple[int, int], where: str, name: str
) -> tuple[Box, ...]:
    """One box per ``<region>`` of ``text``, each clipped to the image (or refused)."""
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"{name} must be a list of [x1, y1, x2, y2] pixel boxes, got {type(boxes).__name__}")
    check_region_count(text.count(REGION_TOKEN), len(boxes), where)
    return tuple(pixel_box_in_image(box, size, f"{name}[{k}]") for k, box in enumerate(boxes))
