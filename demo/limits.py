"""What the demo accepts: the limits and the checks that turn a bad request into a clear message.

Every check raises ``DemoInputError`` (a ``ValueError``) whose text is shown to the user as it is, so each
message names the field, the value and the limit.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from PIL import Image

from loclip.core.image_loading import ImageTooLarge, open_raster, to_rgb
from loclip.core.json_input import InputRefused, parse_json
from loclip.core.messages import shown
from loclip.core.recipe import CheckedConfig, PositiveFloat, PositiveInt, option


class DemoInputError(ValueError):
    """A request the demo refuses; the message is meant for the person who sent it."""


@dataclass(frozen=True)
class Limits(CheckedConfig):
    """Request limits (``loclip-demo``'s ``--limits.*`` flags), checked once, when built.

    ``max_pixels``: width × height of an image (default 4096 × 4096). ``max_boxes``: boxes per request.
    ``max_text_chars``: characters of a question, phrase or the candidate-label text. ``max_labels``: candidate
    labels per request. ``max_file_mb``: upload size, enforced by gradio before a request reaches the model.
    ``max_turns``: questions in one chat conversation (earlier turns + the new one). ``max_prompt_tokens``: what
    the chat model reads for one answer (the image's tokens, every earlier turn and the question), in tokens.
    """

    FIELD_PREFIX = "limits."

    max_pixels: PositiveInt = option(4096 * 4096, "largest image, width x height")
    max_boxes: PositiveInt = option(8, "boxes per request")
    max_text_chars: PositiveInt = option(500, "characters of a question, phrase or label list")
    max_labels: PositiveInt = option(32, "candidate labels per request")
    max_file_mb: PositiveFloat = option(20.0, "largest upload in MB")
    max_turns: PositiveInt = option(8, "questions in one chat conversation")
    max_prompt_tokens: PositiveInt = option(
        2048, "tokens the chat model reads for one answer (image, earlier turns and question)"
    )

    @property
    def max_request_bytes(self) -> int:
        """The largest request body other than an upload: a full conversation (``max_turns`` turns of a question
        and a 4x longer answer, every character JSON-escaped at 16 bytes at worst, and their boxes) plus 64 KiB
        for the envelope. Refused before it is parsed (``demo.http_limits``)."""
        per_turn = 16 * 5 * self.max_text_chars + 2 * 64 * self.max_boxes
        return 64 * 1024 + self.max_turns * per_turn

    @property
    def max_upload_bytes(self) -> int:
        """The largest upload request: one file of ``max_file_mb`` and 64 KiB of multipart headers."""
        return int(self.max_file_mb * 1024 * 1024) + 64 * 1024


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
        raise DemoInputError(f"image file {shown(os.path.basename(str(path)))} does not exist")
    name = os.path.basename(str(path))
    try:  # raster formats only (an EPS would run Ghostscript), size checked from the header before decoding
        return to_rgb(open_raster(path, name, limits.max_pixels), name)
    except ImageTooLarge as e:
        if e.size is not None:
            check_image_size(*e.size, limits)
        raise DemoInputError(
            f"{shown(name)} has more than {limits.max_pixels:,} pixels; the limit is {limits.max_pixels:,} pixels"
        ) from e
    except ValueError as e:  # ImageRefused: not an allowed raster format, corrupt or truncated
        reason = str(e).replace(str(path), name)  # the server's temporary path means nothing to the sender
        raise DemoInputError(f"cannot read {shown(name)} as an image (corrupt or not an image file): {reason}") from e


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
            value = parse_json(value, field)
        except InputRefused as e:  # not JSON, or nested deeper than the parser recurses
            raise DemoInputError(f"{e}; send {expected}") from None
    if not isinstance(value, (list, tuple)):
        raise DemoInputError(f"{field} must be {expected}, got {type(value).__name__}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_boxes(value: Any, field: str = "boxes") -> list[list[float]]:
    """Boxes as sent by a client → a list of ``[x1, y1, x2, y2]`` float lists (shape only; see ``check_boxes``).

    Accepts ``None``/empty (no boxes), a list of 4-number lists, a single 4-number list, or that as JSON text.
    ``field`` names the boxes in messages (``history[2].question_boxes``).
    """
    value = json_list(value, field, "a list of [x1, y1, x2, y2] pixel boxes")
    if len(value) == 4 and all(_is_number(v) for v in value):
        value = [value]  # one bare box
    boxes = []
    for i, box in enumerate(value):
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DemoInputError(f"{field}[{i}] must be four numbers [x1, y1, x2, y2], got {shown(box)}")
        try:
            boxes.append([float(v) for v in box])
        except OverflowError:  # an integer of hundreds of digits (JSON puts no limit on a number's size)
            raise DemoInputError(f"{field}[{i}] has a coordinate too large for a number: {shown(box)}") from None
    return boxes


def check_boxes(boxes: list[list[float]], limits: Limits, field: str = "boxes") -> list[list[float]]:
    """Refuse too many boxes (``limits.max_boxes``) and a box drawn without area (x1 < x2 and y1 < y2 needed).
    Whether each lies on its image is the one box rule (``loclip.encoder.boxes.check_pixel_box``), checked where
    the image is known: by the chat prompt (``ChatPrompt.build``) or ``EncoderBackend.rank``."""
    if len(boxes) > limits.max_boxes:
        raise DemoInputError(f"{field}: {len(boxes)} boxes given; the limit is {limits.max_boxes}")
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        finite = all(math.isfinite(v) for v in (x1, y1, x2, y2))  # a box that is not: the box rule names it
        if finite and not (x2 > x1 and y2 > y1):
            raise DemoInputError(
                f"{field}[{i}] = {[round(v, 2) for v in (x1, y1, x2, y2)]} is empty or inverted: "
                "need x1 < x2 and y1 < y2"
            )
    return boxes


class HistoryTurn(NamedTuple):
    """An earlier turn as a client sent it back: boxes in pixels of the conversation's image."""

    question: str
    question_boxes: list[list[float]]
    answer: str
    answer_boxes: list[list[float]]


def parse_history(value: Any, limits: Limits) -> list[HistoryTurn]:
    """A conversation's earlier turns as sent by a client → one ``HistoryTurn`` per turn (shape only: the backend
    checks the question boxes against the image; the answer boxes are only handed back, so they need only be
    finite; special tokens are ``chat``'s rule).

    Accepts ``None``/empty (a new conversation), a list of ``{"question", "question_boxes", "answer",
    "answer_boxes"}`` objects (what ``/ask`` returns, so its ``history`` can be sent back as it is), or that as
    JSON text. The turn count is checked before any turn is read.
    """
    value = json_list(value, "history", "a list of earlier turns (the history /ask returned)")
    if len(value) >= limits.max_turns:
        raise DemoInputError(
            f"history has {len(value)} turns; a conversation holds at most {limits.max_turns} "
            "questions: start a new one"
        )
    turns = []
    for i, turn in enumerate(value):
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("question"), str)
            or not isinstance(turn.get("answer"), str)
        ):
            raise DemoInputError(f"history[{i}] must be an object with text 'question' and 'answer', got {shown(turn)}")
        if len(turn["answer"]) > 4 * limits.max_text_chars:
            raise DemoInputError(
                f"history[{i}].answer has {len(turn['answer'])} characters; the limit is {4 * limits.max_text_chars}"
            )
        question = check_text(turn["question"], f"history[{i}].question", limits)
        boxes = parse_boxes(turn.get("question_boxes"), f"history[{i}].question_boxes")
        answer_boxes = parse_boxes(turn.get("answer_boxes"), f"history[{i}].answer_boxes")
        for k, box in enumerate(answer_boxes):
            if not all(math.isfinite(v) for v in box):
                raise DemoInputError(
                    f"history[{i}].answer_boxes[{k}] has a coordinate that is not a finite number: {shown(box)}"
                )
        turns.append(HistoryTurn(question, boxes, turn["answer"], answer_boxes))
    return turns
