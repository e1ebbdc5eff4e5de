"""Held-out MLLM figures on LLaVA-style records: referring accuracy and REC accuracy at an IoU threshold.

Each referring turn (a question with ``<region>`` and a text answer) and each grounding turn (an answer that
is exactly one box) of the records is asked on its own, as the first question about its image, with greedy
decoding through ``chat``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loclip.core.image_loading import open_image
from loclip.encoder import boxes as bx
from loclip.encoder.box_text import parse_boxes
from loclip.mllm.chat import chat
from loclip.mllm.conversation import REGION_TOKEN, to_messages
from loclip.mllm.processing import LoclipLlavaProcessor


@dataclass(frozen=True)
class Question:
    """One turn to ask alone: pixel ``boxes`` for its ``<region>``s; ``answer`` text (refer) or ``None`` with
    ``truth_box`` in model-frame normalised xyxy (ground)."""

    image: str
    question: str
    boxes: list[list[float]]
    answer: str | None
    truth_box: list[float] | None


def questions(records: list[dict[str, Any]], kind: str) -> list[Question]:
    """``kind="refer"``: turns asking about a ``<region>``; ``kind="ground"``: turns answered by one box."""
    if kind not in ("refer", "ground"):
        raise ValueError(f"kind must be 'refer' or 'ground', got {kind!r}")
    found = []
    for record in records:
        messages, boxes, used = to_messages(record["conversations"]), record.get("boxes") or [], 0
        for ask, reply in zip(messages[::2], messages[1::2]):
            text = ask["content"].replace("<image>", "").strip()
            n = text.count(REGION_TOKEN)
            mine, used = boxes[used : used + n], used + n
            parsed = parse_boxes(reply["content"])
            if kind == "refer" and n == 1 and not parsed:
                found.append(Question(record["image"], text, mine, reply["content"], None))
            elif kind == "ground" and n == 0 and len(parsed) == 1:
                found.append(Question(record["image"], text, [], None, parsed[0]))
    return found


def normalise_phrase(text: str) -> str:
    """Lower case, single spaces, no trailing punctuation: what an exact phrase match compares."""
    return re.sub(r"\s+", " ", text.lower()).strip().rstrip(".!?").strip()


@dataclass(frozen=True)
class Answered:
    """A question asked: its image's ``size`` (height, width), the ``answer`` text and the answer's ``boxes``
    (original-image pixels)."""

    question: Question
    size: tuple[int, int]
    answer: str
    boxes: list[list[float]]


def ask_each(
    model: Any,
    processor: LoclipLlavaProcessor,
    items: list[Question],
    image_root: str | os.PathLike,
    max_new_tokens: int = 24,
) -> Iterator[Answered]:
    """Each question asked alone, as the first about its image (``image_root`` / ``Question.image``), with its
    ``<region>`` boxes, by greedy ``chat``."""
    for q in items:
        image = open_image(Path(image_root) / q.image, "image")
        answer, boxes = chat(model, processor, image, q.question, q.boxes, max_new_tokens)
        yield Answered(q, (image.height, image.width), answer, boxes)


def referring_accuracy(answers: Iterable[Answered]) -> float:
    """Share of referring questions whose answer equals the truth phrase (``normalise_phrase``); 0 for none."""
    hits = [normalise_phrase(a.answer) == normalise_phrase(a.question.answer or "") for a in answers]
    return sum(hits) / max(len(hits), 1)


def rec_accuracy(answers: Iterable[Answered], image_size: int, iou_threshold: float = 0.5) -> float:
    """Referring-expression comprehension: share of grounding questions whose first answered box has
    IoU >= ``iou_threshold`` with the truth (both in original-image pixels, the truth mapped from the model frame
    of ``image_size``; no box counts as a miss); 0 for none."""
    hits = []
    for a in answers:
        truth = bx.model_to_pixel(torch.tensor([a.question.truth_box]), a.size, image_size)
        hits.append(bool(a.boxes) and float(bx.box_iou(torch.tensor(a.boxes[:1]), truth)[0]) >= iou_threshold)
    return sum(hits) / max(len(hits), 1)


@torch.no_grad()
def evaluate_records(
    model: Any,
    processor: LoclipLlavaProcessor,
    records: list[dict[str, Any]],
    image_root: str | os.PathLike,
    max_questions: int = 200,
    max_new_tokens: int = 24,
) -> dict[str, float]:
    """``{"referring_accuracy", "rec_acc@0.5", "n_refer", "n_ground"}`` over the first ``max_questions`` of each."""
    was_training = model.training
    model.eval()
    refer, ground = questions(records, "refer")[:max_questions], questions(records, "ground")[:max_questions]
    size = processor.image_processor.image_size
    result = {
        "referring_accuracy": referring_accuracy(ask_each(model, processor, refer, image_root, max_new_tokens)),
        "rec_acc@0.5": rec_accuracy(ask_each(model, processor, ground, image_root, max_new_tokens), size, 0.5),
        "n_refer": float(len(refer)),
        "n_ground": float(len(ground)),
    }
    model.train(was_training)
    return result
