"""Binary masks of the world's shapes, rasterised with vectorised tests on pixel centres.

Shapes are defined in the unit square (x right, y down). A mask depends only on the shape and its
side in pixels, so masks are cached: a scene costs a dictionary look-up per object, not a raster.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from .world import SHAPES

Vertices = tuple[tuple[float, float], ...]


def _regular_polygon(
    corners: int, radius: float, start_deg: float, inner: float | None = None, centre_y: float = 0.5
) -> Vertices:
    """Vertices around (0.5, centre_y); with ``inner`` every second vertex sits at that radius (a star)."""
    count = corners * 2 if inner is not None else corners
    pts = []
    for k in range(count):
        r = inner if inner is not None and k % 2 else radius
        a = np.deg2rad(start_deg + 360.0 * k / count)
        pts.append((0.5 + r * np.cos(a), centre_y + r * np.sin(a)))
    return tuple(pts)


_POLYGONS: dict[str, Vertices] = {
    "triangle": ((0.5, 0.0), (1.0, 1.0), (0.0, 1.0)),
    "hexagon": _regular_polygon(6, 0.5, 0.0),
    # Outer radius as wide as the square allows; moved down so its top point and lower points
    # sit equally far from the square's edges. A fat inner radius keeps small stars star-like.
    "star": _regular_polygon(5, 0.525, -90.0, inner=0.25, centre_y=0.55),
}


def _polygon_mask(vertices: Vertices, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even–odd rule: a point is inside if a ray to its right crosses the outline an odd number of times.

    ``x``/``y``: broadcastable coordinate grids → bool mask of their broadcast shape.
    """
    inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1]):
        if y1 == y2:  # a horizontal edge is never crossed by a horizontal ray
            continue
        spans = (y1 > y) != (y2 > y)
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= spans & (x < x_cross)
    return inside


@cache
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Mask of ``shape`` drawn in a ``side`` x ``side`` square → bool ``[side, side]``, read-only.

    Every mask is non-empty for ``side >= 3``; it need not touch all four edges of its square
    (a star is shorter than it is wide), which is why boxes come from drawn pixels, not squares.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    if side < 3:
        raise ValueError(f"side must be >= 3 pixels, got {side!r}")
    c = (np.arange(side) + 0.5) / side  # pixel centres in the unit square
    x, y = c[None, :], c[:, None]
    r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2
    if shape == "circle":
        mask = r2 <= 0.25
    elif shape == "ring":
        mask = (r2 <= 0.25) & (r2 >= 0.27**2)
    elif shape == "diamond":  # implicit form: symmetric on the pixel grid, unlike its polygon
        mask = np.abs(x - 0.5) + np.abs(y - 0.5) <= 0.5
    elif shape == "square":
        mask = np.ones((side, side), dtype=bool)
    elif shape == "cross":
        arm = 0.19  # half the bar width
        mask = (np.abs(x - 0.5) <= arm) | (np.abs(y - 0.5) <= arm)
    else:
        mask = _polygon_mask(_POLYGONS[shape], x, y)
    mask = np.broadcast_to(mask, (side, side)).copy()
    mask.flags.writeable = False
    return mask
