"""Prompt templates that turn a class name into text for zero-shot and region classification.

Each template holds one ``{}`` where the class name goes. The default set is small and generic (no
dataset-specific wording); pass your own as a file (``EvalPlan.templates``: one per line, ``#`` comments).
The synthetic world's phrases are classified bare (``"{}"``): that is how its captions say them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from loclip.core.json_input import read_text

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a picture of a {}.",
    "an image showing a {}.",
    "a close-up photo of a {}.",
    "a cropped photo of a {}.",
)
BARE: tuple[str, ...] = ("{}",)


def check_templates(templates: Sequence[str], field_name: str = "templates") -> tuple[str, ...]:
    """Templates as a tuple; ``ValueError`` naming the first without exactly one ``{}`` (or none at all)."""
    if not templates:
        raise ValueError(f"{field_name} is empty: give at least one template such as 'a photo of a {{}}.'")
    for i, t in enumerate(templates):
        if not isinstance(t, str) or t.count("{}") != 1 or t.replace("{}", "").count("{") or t.count("}") != 1:
            raise ValueError(f"{field_name}[{i}] = {t!r} must contain exactly one '{{}}' and no other braces")
    return tuple(templates)


def read_templates(path: str | os.PathLike) -> tuple[str, ...]:
    """Templates from a text file: one per line; blank lines and lines starting with ``#`` are ignored."""
    lines = read_text(path, "templates").splitlines()
    return check_templates(
        [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")],
        f"templates file {str(path)!r}: template",
    )
