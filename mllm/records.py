"""LLaVA-style record files: reading them and checking a record's boxes.

A record: ``{"image": path, "conversations": [{"from": "human"|"gpt", "value": …}, …], "boxes": [[x1, y1,
x2, y2], …]}`` — pixel boxes of the image, one per ``<region>`` in the conversation, in order. Finetuning
(``loclip.finetune.data``) trains on such files and evaluation (``loclip.eval.mllm_referring``) scores on them;
the file format lives here, beside the conversation format it carries, so that both read it the same way and
evaluation needs nothing of the training side.
"""

from __future__ import annotations

import os
from typing import Any

from loclip.core.json_input import InputRefused, parse_json, read_text, where_file
from loclip.encoder.boxes import check_pixel_box


def load_records(path: str | os.PathLike, field_name: str = "records") -> list[Any]:
    """A LLaVA JSON file (a list of records) or JSONL (one record per line; a line that does not parse becomes
    ``None``, which the dataset skips and counts), named by the field ``field_name`` (``data.train_json``). A file
    that cannot be read, or a JSON file that does not parse, is an ``InputRefused`` naming the field and the file
    (``loclip.core.json_input``: UTF-8, nesting too deep for the parser included)."""
    text = read_text(path, field_name)
    if str(path).endswith(".jsonl"):
        return [_parsed_or_none(line, field_name) for line in text.splitlines() if line.strip()]
    records = parse_json(text, where_file(path, field_name))
    if not isinstance(records, list):
        raise InputRefused(
            f"{where_file(path, field_name)} must hold a JSON list of records, got {type(records).__name__}"
        )
    return records


def _parsed_or_none(line: str, where: str) -> Any:
    try:
        return parse_json(line, where)
    except InputRefused:
        return None


_BOX_REASONS = {"not_a_box": "bad_boxes", "inverted": "box_inverted", "outside": "box_outside_image"}


def check_boxes(boxes: Any, size: tuple[int, int]) -> tuple[list[list[float]] | None, str | None]:
    """A record's ``boxes`` → (pixel boxes clipped to the image, None), or (None, the skip reason): not a list of
    4 finite numbers each (``bad_boxes``), x2 < x1 or y2 < y1 (``box_inverted``), or past the image by more than
    1 px (``box_outside_image``): the one box rule, ``loclip.encoder.boxes.check_pixel_box``.
    ``size`` is (height, width)."""
    if not isinstance(boxes, list):
        return None, "bad_boxes"
    out = []
    for box in boxes:
        checked = check_pixel_box(box, size)
        if isinstance(checked, str):
            return None, _BOX_REASONS[checked]
        out.append(list(checked))
    return out, None
