"""What the demo accepts: the limits and the checks that turn a bad request into a clear message.

Every check raises ``DemoInputError`` (a ``ValueError``) whose text is shown to the user as it is, so each
message names the field, the value and the limit.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

from loclip.core.image_loading import ImageTooLarge, open_raster, to_rgb
from loclip.core.recipe import PositiveFloat, PositiveInt, check


class DemoInputError(ValueError):
    """A request the demo refuses; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class Limits:
    """Request limits (each is a ``loclip-demo`` flag).

    ``max_pixels``: width × height of an image (default 4096 × 4096). ``max_boxes``: boxes per request.
    ``max_text_chars``: characters of a question, phrase or the candidate-label text. ``max_labels``: candidate
    labels per request. ``max_file_mb``: upload size, enforced by gradio before a request reaches the model.
    ``max_turns``: questions in one chat conversation (earlier turns + the new one), which bounds the prompt.
    """

    max_pixels: PositiveInt = 4096 * 4096
    max_boxes: PositiveInt = 8
    max_text_chars: PositiveInt = 500
    max_labels: PositiveInt = 32
    max_file_mb: PositiveFloat = 20.0
    max_turns: PositiveInt = 8

    def __post_init__(self) -> None:
        check(self)


def check_image_size(width: int, height: int, limits: Limits) -> None:
    """Refuse an image larger than ``limits.max_pixels``."""
    if width * height > limits.max_pixels:
        raise DemoInputError(
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,} pixels"
        )


def load_image(path: str | os.PathLike | None, limits: Limits) -> Image.Image:
    """An uploaded image file → RGB PIL image (EXIF orientation applied), after checking its pixel count.

    The size is read from the header first, so an oversized image is refused before it is decoded.
    """
    if path is None or (isinstance(path, str) and not path.strip()):
        raise DemoInputError("no image: upload an image file")
    if not os.path.isfile(path):
        raise DemoInputError(f"image file {os.path.basename(str(path))!r} does not exist")
    name = os.path.basename(str(path))
    try:  # raster formats only (an EPS would run Ghostscript), size checked from the header before decoding
        return to_rgb(open_raster(path, name, limits.max_pixels), name)
    except ImageTooLarge as e:
        if e.size is not None:
            check_image_size(*e.size, limits)
        raise DemoInputError(f"{name!r} has more than {limits.max_pixels:,} pixels; the limit is "
                             f"{limits.max_pixels:,} pixels") from e
    except ValueError as e:  # ImageRefused: not an allowed raster format, corrupt or truncated
        reason = str(e).replace(str(path), name)  # the server's temporary path means nothing to the sender
        raise DemoInputError(f"cannot read {name!r} as an image (corrupt or not an image file): {reason}") from e


def check_loaded_image(image: Image.Image | None, limits: Limits) -> Image.Image:
    """An image the UI already decoded → RGB, refusing a missing or oversized one."""
    if image is None:
        raise DemoInputError("no image: upload an image first")
    check_image_size(image.width, image.height, limits)
    return to_rgb(image, "image")


def check_text(text: str | None, field: str, limits: Limits, required: bool = True) -> str:
    """Stripped ``text``; refuses an empty one (when ``required``) or one over ``limits.max_text_chars``."""
    if text is not None and not isinstance(text, str):
        raise DemoInputError(f"{field} must be text, got {type(text).__name__}")
    text = (text or "").strip()
    if required and not text:
        raise DemoInputError(f"{field} is empty: type some text")
    if len(text) > limits.max_text_chars:
        raise DemoInputError(f"{field} has {len(text)} characters; the limit is {limits.max_text_chars}")
    return text


def parse_labels(text: str | None, limits: Limits) -> list[str]:
    """Candidate labels separated by commas or newlines → distinct non-empty labels, in order."""
    text = check_text(text, "labels", limits)
    labels = list(dict.fromkeys(p.strip() for p in re.split(r"[,\n]", text) if p.strip()))
    if not labels:
        raise DemoInputError("labels holds no label: separate candidate labels with commas or newlines")
    if len(labels) > limits.max_labels:
        raise DemoInputError(f"{len(labels)} candidate labels given; the limit is {limits.max_labels}")
    return labels


def json_list(value: Any, field: str, expected: str) -> list | tuple:
    """A client's list, sent as is or as JSON text; ``None`` or blank text is an empty list."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DemoInputError(f"{field} is not valid JSON ({e}); send {expected}") from e
    if not isinstance(value, (list, tuple)):
        raise DemoInputError(f"{field} must be {expected}, got {type(value).__name__}")
    return value


def parse_boxes(value: Any) -> list[list[float]]:
    """Boxes as sent by a client → a list of ``[x1, y1, x2, y2]`` float lists (shape only; see ``check_boxes``).

    Accepts ``None``/empty (no boxes), a list of 4-number lists, a single 4-number list, or that as JSON text.
    """
    value = json_list(value, "boxes", "a list of [x1, y1, x2, y2] pixel boxes")
    if len(value) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        value = [value]  # one bare box
    boxes = []
    for i, box in enumerate(value):
        if (
            not isinstance(box, (list, tuple))
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        ):
            raise DemoInputError(f"boxes[{i}] must be four numbers [x1, y1, x2, y2], got {box!r}")
        boxes.append([float(v) for v in box])
    return boxes


def check_boxes(boxes: list[list[float]], width: int, height: int, limits: Limits) -> list[list[float]]:
    """Refuse too many boxes, and boxes that are empty, inverted, not finite or reach outside the image."""
    if len(boxes) > limits.max_boxes:
        raise DemoInputError(f"{len(boxes)} boxes given; the limit is {limits.max_boxes}")
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        shown = [round(v, 2) for v in (x1, y1, x2, y2)]
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise DemoInputError(f"box {i + 1} {shown} has a coordinate that is not a finite number")
        if not (x2 > x1 and y2 > y1):
            raise DemoInputError(f"box {i + 1} {shown} is empty or inverted: need x1 < x2 and y1 < y2")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise DemoInputError(
                f"box {i + 1} {shown} reaches outside the {width}x{height} (width x height) image"
            )
    return boxes


def parse_history(value: Any, limits: Limits) -> list[tuple[str, list[list[float]], str]]:
    """A conversation's earlier turns as sent by a client → ``(question, question_boxes, answer)`` per turn
    (shape only; the backend checks the boxes against the image).

    Accepts ``None``/empty (a new conversation), a list of ``{"question", "question_boxes", "answer"}`` objects
    (what ``/ask`` returns, so its ``history`` can be sent back as it is), or that as JSON text.
    """
    value = json_list(value, "history", "a list of earlier turns (the history /ask returned)")
    if len(value) >= limits.max_turns:
        raise DemoInputError(f"history has {len(value)} turns; a conversation holds at most {limits.max_turns} "
                             "questions: start a new one")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("question"), str) \
                or not isinstance(turn.get("answer"), str):
            raise DemoInputError(f"history[{i}] must be an object with text 'question' and 'answer', got {turn!r:.120}")
        if len(turn["answer"]) > 4 * limits.max_text_chars:
            raise DemoInputError(f"history[{i}].answer has {len(turn['answer'])} characters; the limit is "
                                 f"{4 * limits.max_text_chars}")
        question = check_text(turn["question"], f"history[{i}].question", limits)
        try:
            boxes = parse_boxes(turn.get("question_boxes"))
        except DemoInputError as e:
            raise DemoInputError(f"history[{i}].question_boxes: {e}") from None
        turns.append((question, boxes, turn["answer"]))
    return turns
