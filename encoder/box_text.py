"""The one module for boxes written as text in the MLLM: Ferret-style ``[x1, y1, x2, y2]``.

Integers 0..999 in the model-input frame (see ``loclip.encoder.boxes``, which owns the bins).
The renderer is strict (it is our own output); the parser is lenient about spacing but turns
anything malformed into *no box*, never an exception, because it reads model generations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from loclip.core.messages import shown
from loclip.encoder import boxes

# A bracketed group without nested brackets; its inside is checked separately so that a malformed
# group is skipped as a whole instead of half-matched.
_GROUP = re.compile(r"\[([^\[\]]*)\]")
_BIN = re.compile(r"[0-9]{1,3}")  # 0..999, at most three digits (also keeps int() cheap)


def render_box_list(boxes_norm: torch.Tensor | Sequence, name: str = "boxes_norm") -> list[str]:
    """Normalised model-frame xyxy boxes ``[N, 4]`` → one ``"[x1, y1, x2, y2]"`` string per box.

    Raises ``ValueError``/``TypeError`` naming ``name`` for anything but boxes in [0, 1] with ``x1 <= x2``,
    ``y1 <= y2`` (via ``boxes.to_bins``).
    """
    bins = boxes.to_bins(boxes_norm, name=name).reshape(-1, 4).tolist()
    return ["[" + ", ".join(str(v) for v in row) + "]" for row in bins]


def render_boxes(boxes_norm: torch.Tensor | Sequence) -> str:
    """Normalised model-frame xyxy boxes ``[N, 4]`` → ``"[x1, y1, x2, y2], [x1, y1, x2, y2]"``."""
    return ", ".join(render_box_list(boxes_norm))


def render_box(box_norm: torch.Tensor | Sequence) -> str:
    """One normalised model-frame xyxy box ``[4]`` → ``"[x1, y1, x2, y2]"`` (integers 0..999)."""
    t = boxes.as_float_boxes(box_norm, "box_norm")
    if t.shape != (4,):
        raise ValueError(f"box_norm must have shape [4], got {tuple(t.shape)}")
    return render_box_list(t[None], name="box_norm")[0]


def _parse_group(inside: str) -> list[int] | None:
    """``"12, 5,40 ,99"`` → ``[12, 5, 40, 99]``; ``None`` unless four bins with x1<=x2, y1<=y2."""
    parts = [p.strip() for p in inside.split(",")]
    if len(parts) != 4 or not all(_BIN.fullmatch(p) for p in parts):
        return None
    x1, y1, x2, y2 = (int(p) for p in parts)
    if x2 < x1 or y2 < y1:
        return None
    return [x1, y1, x2, y2]


def parse_boxes(text: str) -> list[list[float]]:
    """Every well-formed ``[x1, y1, x2, y2]`` in ``text`` → normalised model-frame xyxy boxes.

    Lenient about spaces; a group with values over 999, a wrong count, non-integers or x2 < x1
    yields no box. Never raises (a non-string gives ``[]``).
    """
    if not isinstance(text, str):
        return []
    groups = [g for g in (_parse_group(m.group(1)) for m in _GROUP.finditer(text)) if g is not None]
    if not groups:
        return []
    return boxes.from_bins(torch.tensor(groups)).tolist()


def boxes_to_placeholder(text: str, placeholder: str) -> tuple[str, list[list[float]]]:
    """Replace every well-formed ``[x1, y1, x2, y2]`` of ``text`` by ``placeholder``.

    Returns the new text and the boxes it held (normalised model-frame xyxy, in order); malformed groups
    stay as they are. This is how box answers become ``<ground>`` tokens for a grounding-token MLLM.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(placeholder, str):
        raise TypeError(f"placeholder must be a str, got {shown(placeholder)}")
    if not placeholder:
        raise ValueError("placeholder must not be empty: the boxes would vanish from the text")
    found: list[list[int]] = []

    def swap(match: re.Match) -> str:
        group = _parse_group(match.group(1))
        if group is None:
            return match.group(0)
        found.append(group)
        return placeholder

    replaced = _GROUP.sub(swap, text)
    return replaced, (boxes.from_bins(torch.tensor(found)).tolist() if found else [])


def fill_placeholders(pieces: Sequence[str], boxes_norm: torch.Tensor | Sequence) -> str:
    """Text pieces that were separated by placeholders + one box per gap → one string with box text.

    ``pieces`` has ``len(boxes_norm) + 1`` entries (``text.split(placeholder)``); the boxes are
    normalised model-frame xyxy ``[G, 4]``. Whitespace around each box collapses to one space.
    """
    if isinstance(pieces, str) or not all(isinstance(p, str) for p in pieces):
        raise TypeError(f"pieces must be a list of str (text split at the placeholders), got {shown(pieces)}")
    rendered = render_box_list(boxes_norm)
    if len(pieces) != len(rendered) + 1:
        raise ValueError(f"boxes_norm: {len(pieces)} text pieces need {len(pieces) - 1} boxes, got {len(rendered)}")
    out = pieces[0].rstrip()
    for box, piece in zip(rendered, pieces[1:]):
        out = f"{out} {box}" if out else box
        piece = piece.strip()
        if piece:
            out = f"{out}{piece}" if piece[0] in ",.;:!?)" else f"{out} {piece}"
    return out.strip()
