"""Placing shape masks on a canvas so that no object is hidden, and reading back tight boxes.

The canvas is a label map: 0 for background, ``k + 1`` where object ``k`` is the top-most drawn.
Objects are drawn in order, each over the earlier ones.
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]


def place_masks(
    rng: np.random.Generator, masks: list[np.ndarray], size: int, min_visible: float, tries: int
) -> tuple[np.ndarray, list[tuple[int, int] | None]]:
    """Place ``masks`` (bool ``[s_k, s_k]``, each fitting inside the canvas) in order.

    A position is accepted when every earlier object keeps at least ``min_visible`` of its pixels;
    after ``tries`` rejected positions the object is dropped (its origin is ``None`` and it has
    no pixels). Returns the label map (uint8 ``[size, size]``) and each mask's ``(y0, x0)``.
    """
    labels = np.zeros((size, size), dtype=np.uint8)
    # Both indexed by label (slot 0, the background, is never checked); a dropped object needs 0.
    visible = np.zeros(len(masks) + 1, dtype=np.int64)
    need = np.zeros(len(masks) + 1, dtype=np.int64)
    origins: list[tuple[int, int] | None] = []
    for k, mask in enumerate(masks):
        side = mask.shape[0]
        origins.append(None)
        for _ in range(tries):
            y0, x0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            patch = labels[y0 : y0 + side, x0 : x0 + side]  # a view: writing it draws on the canvas
            left = visible[: k + 1] - np.bincount(patch[mask], minlength=k + 1)
            if (left[1:] < need[1 : k + 1]).any():
                continue
            patch[mask] = k + 1
            area = int(mask.sum())
            visible[: k + 1] = left
            visible[k + 1] = area
            need[k + 1] = int(np.ceil(min_visible * area))
            origins[k] = (y0, x0)
            break
    return labels, origins


def visible_box(labels: np.ndarray, label: int, origin: tuple[int, int], side: int) -> Box:
    """Tight pixel xyxy box of the pixels labelled ``label`` inside the square at ``origin``.

    ``x2``/``y2`` are exclusive (``max + 1``), so the box of a single pixel at (x, y) is
    ``(x, y, x + 1, y + 1)``. The object must still have a visible pixel.
    """
    y0, x0 = origin
    own = labels[y0 : y0 + side, x0 : x0 + side] == label
    cols = np.flatnonzero(own.any(axis=0))
    rows = np.flatnonzero(own.any(axis=1))
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
