"""The world's fixed inventory: shapes, colours, sizes, backgrounds, splits and held-out pairs.

Everything a scene can contain is listed here, so the language, the tokenizer and the docs
all read the same names.
"""

from __future__ import annotations

from itertools import product
from typing import Literal, get_args

RGB = tuple[int, int, int]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "ring")

# Object colours are flat (no noise) and >= 90 RGB units apart, so a region's colour is recoverable
# from its pixels; no object colour comes near a background colour (see BACKGROUNDS).
COLOURS: dict[str, RGB] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (245, 225, 30),
    "green": (30, 170, 50),
    "blue": (30, 80, 230),
    "purple": (150, 50, 200),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}

# Side of the shape's square as a fraction of the image side, (low, high). The bands leave a gap
# so "small" and "large" never describe the same drawn size.
SIZES: dict[str, tuple[float, float]] = {"small": (0.15, 0.20), "large": (0.28, 0.36)}

# Background base colours: muted, mid-range, >= 95 RGB units from every object colour. The generator adds a
# gradient and per-pixel noise of at most BACKGROUND_JITTER per channel on top.
BACKGROUNDS: dict[str, RGB] = {
    "grey": (128, 128, 128),
    "brown": (120, 80, 55),
    "beige": (200, 185, 150),
    "teal": (55, 125, 130),
    "plum": (110, 70, 105),
}
BACKGROUND_JITTER = 26  # max |gradient| + max |noise|, per channel

Split = Literal["train", "val", "test", "novel"]
SPLITS: tuple[str, ...] = get_args(Split)
SPLIT_IDS: dict[str, int] = {name: i for i, name in enumerate(SPLITS)}

# The composition split: colour–shape pairs never drawn in train/val/test. One pair per colour and
# one per shape (a permutation), so every colour and every shape is still seen in training with
# seven partners, and each novel pair combines a seen colour with a seen shape. 8 of 64 pairs.
NOVEL_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("red", "square"),
        ("orange", "ring"),
        ("yellow", "circle"),
        ("green", "star"),
        ("blue", "hexagon"),
        ("purple", "triangle"),
        ("white", "cross"),
        ("black", "diamond"),
    }
)
# Sorted lists, so sampling by index is deterministic.
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple(product(COLOURS, SHAPES))
SEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p not in NOVEL_PAIRS)
NOVEL_PAIR_LIST: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p in NOVEL_PAIRS)


def check_split(split: str) -> str:
    """Return ``split`` or raise ``ValueError`` naming it and the valid ones."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split
