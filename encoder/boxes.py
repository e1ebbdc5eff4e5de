"""The one module that owns box conventions. Everything that touches boxes calls it.

Internal form: ``xyxy`` floats normalised to [0, 1] in the **model-input frame**, i.e. after the
processor resized the long side to ``image_size`` and padded the bottom/right to a square.
Other forms, each with a converter here and nowhere else:

- pixel ``xyxy`` in the original image (what users and datasets give),
- COCO ``xywh`` in pixels,
- integer ``0..999`` bins (the MLLM's text form, Ferret style): ``bin = round(v * 999)``,
- ``cxcywh`` normalised (what the box head regresses).

Sizes are always ``(height, width)`` like transformers' ``target_sizes``.

One rule for a pixel box someone hands over (``check_pixel_box``): four finite numbers in xyxy order, inside its
image give or take ``EDGE_TOLERANCE`` (1 px): within it the box is clipped to the image, beyond it is refused
(a data loader skips and counts it). The processors, ``chat``'s prompt, the demo and the data loaders all use it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from loclip.core.messages import shown

NUM_BINS = 1000  # text boxes use integers 0..NUM_BINS-1
EDGE_TOLERANCE = 1.0  # pixels a pixel box may reach past its image's edge (rounding, EXIF, an annotator's last
# pixel): such a box is clipped to the image; one reaching further is refused (skipped and counted in data)
MAX_SIDE = 2**31 - 1  # the longest image side: PIL holds sizes in a C int (and float32 geometry stays finite)


def _side(value: Any, name: str) -> int:
    """An image side: an int (a numpy or 0-d tensor int, or a float without a fraction) in ``1..MAX_SIDE``."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise TypeError(f"{name} must be an int, got {shown(value)}")
    try:
        side = operator.index(value)
    except TypeError:
        if not (isinstance(value, float) and value.is_integer()):
            raise TypeError(f"{name} must be an int, got {shown(value)}") from None
        side = int(value)
    if not 1 <= side <= MAX_SIDE:
        raise ValueError(f"{name} must be a positive int (at most {MAX_SIDE:,}), got {shown(value)}")
    return side


def height_width(size: Any) -> tuple[int, int]:
    """``size`` (height, width) as two ints; a clear error naming ``size`` otherwise."""
    try:
        h, w = size
    except (TypeError, ValueError):
        raise TypeError(f"size must be a (height, width) pair, got {shown(size)}") from None
    return _side(h, "size height"), _side(w, "size width")


@dataclass(frozen=True)
class Letterbox:
    """Geometry of "resize the long side to ``image_size``, pad bottom/right to a square".

    ``resized_height``/``resized_width`` are the integer sizes the image really has after resizing,
    so the box mapping uses the same per-axis scale as the pixels.
    """

    height: int
    width: int
    image_size: int

    def __post_init__(self) -> None:
        for name in ("height", "width", "image_size"):
            object.__setattr__(self, name, _side(getattr(self, name), f"Letterbox {name}"))

    @property
    def scale(self) -> float:
        return self.image_size / max(self.height, self.width)

    @property
    def resized_height(self) -> int:
        return max(1, min(self.image_size, round(self.height * self.scale)))

    @property
    def resized_width(self) -> int:
        return max(1, min(self.image_size, round(self.width * self.scale)))

    def axis_factors(self) -> tuple[float, float]:
        """Multipliers (fx, fy) taking original-pixel coordinates to normalised model-frame ones."""
        fx = self.resized_width / self.width / self.image_size
        fy = self.resized_height / self.height / self.image_size
        return fx, fy


# The real dtypes boxes may come in. The narrow floats are computed in float32: 999 is no bfloat16 (a box edge at
# 1.0 became bin 1000), 70,000 px is past float16's range, and float8 has no arithmetic at all.
_INT_DTYPES = frozenset(
    {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64}
)
_FLOAT_DTYPES = frozenset(
    {
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.float8_e4m3fn,
        torch.float8_e4m3fnuz,
        torch.float8_e5m2,
        torch.float8_e5m2fnuz,
    }
)


def as_float_boxes(boxes: torch.Tensor | Sequence, name: str) -> torch.Tensor:
    """Boxes as a float32 or float64 tensor ``[..., 4]`` (any other real dtype becomes float32); a clear error
    for anything else."""
    if isinstance(boxes, torch.Tensor):
        t = boxes
    else:
        try:  # an array keeps its dtype until checked, so complex ones are refused, not cut to their real part
            t = torch.as_tensor(boxes, dtype=None if isinstance(boxes, np.ndarray) else torch.float32)
        except OverflowError as e:
            raise ValueError(f"{name} holds a number past float's range: {shown(boxes)}") from e
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be a tensor or nested sequence of numbers, got {shown(boxes)}") from e
        if isinstance(boxes, (list, tuple)) and _holds_bool(boxes):  # torch reads True as 1.0
            raise TypeError(f"{name} must hold numbers, not booleans, got {shown(boxes)}")
    if t.dtype not in _INT_DTYPES | _FLOAT_DTYPES:
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.dtype != torch.float32 and (t.dtype != torch.float64 or not isinstance(boxes, torch.Tensor)):
        t = t.to(torch.float32)  # lists and arrays as float32 like tensors from the model; a float64 tensor stays
    if t.numel() == 0 and t.dim() == 1:  # [] is an empty box list; [R=0, 4] and [B, 0, 4] pass as they are
        return t.new_zeros((0, 4))
    if t.dim() == 0 or t.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4], got {tuple(t.shape)}")
    finite = torch.isfinite(t).all(-1)
    if not finite.all():
        raise ValueError(
            f"{name}: box {shown(t[~finite][0].tolist())} has a NaN or infinite coordinate "
            "(or one past float32's range)"
        )
    return t


def _holds_bool(value: list | tuple) -> bool:
    """Whether a nested list or tuple holds a bool anywhere (walked without recursion: its depth is the user's)."""
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, (bool, np.bool_)) or getattr(v, "dtype", None) in (np.bool_, torch.bool):
            return True
    return False


# What the tensor helpers compute with (model outputs, checked boxes). Unsigned ints wrap around below zero.
_TENSOR_DTYPES = frozenset(
    {torch.int8, torch.int16, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32, torch.float64}
)


def _check_tensor(boxes: Any, name: str) -> None:
    """Refuse what is not a real tensor ``[..., 4]``: the helpers below would broadcast a wrong shape into a wrong
    answer, or fail deep inside torch."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor [..., 4] (as_float_boxes converts lists), got {type(boxes).__name__}"
        )
    if boxes.dtype not in _TENSOR_DTYPES:
        raise TypeError(f"{name} must be a floating-point or signed integer tensor, got dtype {boxes.dtype}")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4], got {tuple(boxes.shape)}")


def check_xyxy_order(boxes: torch.Tensor, name: str = "boxes") -> None:
    """Raise ``ValueError`` naming the first box with ``x2 < x1`` or ``y2 < y1`` (or a NaN, which is in no order)."""
    _check_tensor(boxes, name)
    bad = ~((boxes[..., 2] >= boxes[..., 0]) & (boxes[..., 3] >= boxes[..., 1]))
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name}{list(idx)} = {shown(boxes[idx].tolist())} has x2 < x1 or y2 < y1 (expected xyxy)")


def validate_normalized(boxes: torch.Tensor | Sequence, name: str = "boxes", atol: float = 1e-6) -> torch.Tensor:
    """Check model-frame boxes: shape ``[..., 4]``, finite, in [0, 1], ``x1 <= x2``, ``y1 <= y2``."""
    t = as_float_boxes(boxes, name)
    if t.numel() == 0:
        return t
    lo, hi = t.min().item(), t.max().item()
    if lo < -atol or hi > 1 + atol:
        flat = t.reshape(-1, 4)
        row = int(((flat < -atol) | (flat > 1 + atol)).any(-1).nonzero()[0])
        raise ValueError(
            f"{name} must be normalised xyxy in [0, 1] (model-input frame); "
            f"box {shown(flat[row].tolist())} is outside. Use LoclipProcessor(boxes=...) to convert pixel boxes."
        )
    check_xyxy_order(t, name)
    return t


def pixel_to_model(
    boxes: torch.Tensor | Sequence, size: tuple[int, int], image_size: int, name: str = "boxes"
) -> torch.Tensor:
    """Pixel xyxy of an original image of ``size=(height, width)`` → normalised model-frame xyxy.

    Shapes: ``[..., 4]`` → ``[..., 4]`` (float). No validation of the range; see ``check_in_image``.
    ``model_to_pixel`` maps back within one pixel: float32 boxes for sides up to 2^23 pixels (past 2^24 float32
    holds no longer every pixel coordinate), float64 boxes for any side up to ``MAX_SIDE``.
    """
    t = as_float_boxes(boxes, name)
    fx, fy = Letterbox(*height_width(size), image_size).axis_factors()
    scale = t.new_tensor([fx, fy, fx, fy])
    return t * scale


def model_to_pixel(
    boxes: torch.Tensor | Sequence, size: tuple[int, int], image_size: int, name: str = "boxes"
) -> torch.Tensor:
    """Normalised model-frame xyxy → pixel xyxy of the original image of ``size=(height, width)``.

    Coordinates are clamped to the original image (a prediction may land in the padding).
    """
    t = as_float_boxes(boxes, name)
    h, w = height_width(size)
    fx, fy = Letterbox(h, w, image_size).axis_factors()
    out = t / t.new_tensor([fx, fy, fx, fy])
    return clip_to_size(out, (h, w))


def clip_to_size(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clamp pixel xyxy boxes ``[..., 4]`` to ``[0, width] x [0, height]``."""
    _check_tensor(boxes, "boxes")
    h, w = height_width(size)
    lo = boxes.new_zeros(4)
    hi = boxes.new_tensor([w, h, w, h])
    return torch.minimum(torch.maximum(boxes, lo), hi)


def check_pixel_box(
    box: Any, size: tuple[int, int], tolerance: float = EDGE_TOLERANCE
) -> tuple[float, float, float, float] | str:
    """The one rule for a pixel xyxy box someone handed over (a data record's, a user's, a processor call's): the
    box, in plain Python floats, clipped to ``size=(height, width)``, or why it cannot be used: ``"not_a_box"``
    (not 4 finite numbers), ``"inverted"`` (x2 < x1 or y2 < y1) or ``"outside"`` (past an edge of the image by
    more than ``tolerance`` pixels; ``EDGE_TOLERANCE`` everywhere but where a recipe widens it for its data).

    Plain Python, no tensors: the data loaders check every region of every sample, where torch calls on
    ``[1, 4]`` tensors cost more than this. ``pixel_box_in_image`` and ``check_in_image`` raise by it.
    """
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_finite_number(v) for v in box)):
        return "not_a_box"
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        return "inverted"
    h, w = size
    if x1 < -tolerance or y1 < -tolerance or x2 > w + tolerance or y2 > h + tolerance:
        return "outside"
    x1, x2 = (min(max(v, 0.0), float(w)) for v in (x1, x2))
    y1, y2 = (min(max(v, 0.0), float(h)) for v in (y1, y2))
    return x1, y1, x2, y2


def pixel_box_in_image(box: Any, size: tuple[int, int], name: str, hint: str = "") -> tuple[float, float, float, float]:
    """``check_pixel_box``'s rule for one box a caller must not skip: the box clipped to the image of
    ``size=(height, width)``, or ``ValueError`` naming ``name`` and the box (``hint`` ends the message of a box
    outside the image)."""
    checked = check_pixel_box(box, size)
    if not isinstance(checked, str):
        return checked
    if checked == "not_a_box":
        raise ValueError(f"{name} must be four finite numbers [x1, y1, x2, y2], got {shown(box)}")
    values = [round(float(v), 2) for v in box]
    if checked == "inverted":
        raise ValueError(f"{name} = {values} has x2 < x1 or y2 < y1 (expected xyxy)")
    h, w = size
    raise ValueError(
        f"{name} = {values} reaches more than {EDGE_TOLERANCE:g} px outside the {w}x{h} (width x height) image{hint}"
    )


def _finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite as a float: an int past float's range (a JSON ``1`` and 400
    zeros) is not, where ``math.isfinite`` would raise ``OverflowError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_in_image(boxes: torch.Tensor, size: tuple[int, int], name: str = "boxes", hint: str = "") -> torch.Tensor:
    """Pixel xyxy boxes ``[..., 4]`` of an image of ``size=(height, width)`` by the one rule (``check_pixel_box``)
    → the boxes clipped to the image, same shape and dtype; ``ValueError`` naming the first box that is inverted
    (or NaN) or past an edge by more than ``EDGE_TOLERANCE`` pixels."""
    check_xyxy_order(boxes, name)
    h, w = height_width(size)
    flat = boxes.reshape(-1, 4)
    rows = [pixel_box_in_image(box, (h, w), f"{name}[{i}]", hint) for i, box in enumerate(flat.tolist())]
    return flat.new_tensor(rows).reshape(boxes.shape) if rows else boxes


def coco_to_xyxy(boxes: torch.Tensor | Sequence, name: str = "boxes") -> torch.Tensor:
    """COCO ``[x, y, w, h]`` pixels → pixel xyxy. Shapes ``[..., 4]``."""
    t = as_float_boxes(boxes, name)
    negative = (t[..., 2:] < 0).any(-1)
    if negative.any():
        raise ValueError(f"{name}: COCO boxes need non-negative width and height, got {shown(t[negative][0].tolist())}")
    return _within_range(t, torch.cat([t[..., :2], t[..., :2] + t[..., 2:]], dim=-1), name)


def xyxy_to_coco(boxes: torch.Tensor | Sequence, name: str = "boxes") -> torch.Tensor:
    """Pixel xyxy → COCO ``[x, y, w, h]``. Shapes ``[..., 4]``. An inverted box has no COCO form."""
    t = as_float_boxes(boxes, name)
    check_xyxy_order(t, name)
    return _within_range(t, torch.cat([t[..., :2], t[..., 2:] - t[..., :2]], dim=-1), name)


def _within_range(given: torch.Tensor, out: torch.Tensor, name: str) -> torch.Tensor:
    """``out``, unless converting a finite box of ``given`` overflowed its dtype (x + w past 3.4e38 in float32)."""
    finite = torch.isfinite(out).all(-1)
    if not finite.all():
        raise ValueError(f"{name}: box {shown(given[~finite][0].tolist())} converts past {given.dtype}'s range")
    return out


def to_bins(boxes: torch.Tensor | Sequence, name: str = "boxes") -> torch.Tensor:
    """Normalised model-frame xyxy → integer bins 0..999 (the MLLM's text form). Shapes ``[..., 4]``."""
    t = validate_normalized(boxes, name)
    return torch.round(t.clamp(0, 1) * (NUM_BINS - 1)).to(torch.long)


def from_bins(bins: torch.Tensor | Sequence, name: str = "boxes") -> torch.Tensor:
    """Integer bins 0..999 in xyxy order → normalised model-frame xyxy (float32). Shapes ``[..., 4]``."""
    t = as_float_boxes(bins, name)
    bad = ~((t >= 0) & (t <= NUM_BINS - 1) & (t == t.round())).all(-1)
    if bad.any():
        raise ValueError(f"{name} bins must be integers in 0..{NUM_BINS - 1}, got {shown(t[bad][0].tolist())}")
    check_xyxy_order(t, name)
    return t.to(torch.float32) / (NUM_BINS - 1)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` centre/size → corners."""
    _check_tensor(boxes, "boxes")
    c, half = boxes[..., :2], boxes[..., 2:] / 2
    return torch.cat([c - half, c + half], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` corners → centre/size."""
    _check_tensor(boxes, "boxes")
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` xyxy → ``[...]`` area (zero for degenerate boxes)."""
    _check_tensor(boxes, "boxes")
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check_tensor(a, "a")
    _check_tensor(b, "b")
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"a {tuple(a.shape)} and b {tuple(b.shape)} do not broadcast; for all pairs pass a[:, None] and b[None]"
        ) from None
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(a) + box_area(b) - inter


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Element-wise IoU of broadcastable xyxy boxes ``[..., 4]`` → ``[...]`` in [0, 1].

    For an all-pairs matrix pass ``a[:, None]`` and ``b[None]``. Areas must fit the dtype (float16: normalised
    boxes only).
    """
    inter, union = _inter_union(a, b)
    return inter / union.clamp(min=eps)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Element-wise GIoU of broadcastable xyxy boxes ``[..., 4]`` → ``[...]`` in [-1, 1]."""
    inter, union = _inter_union(a, b)
    iou = inter / union.clamp(min=eps)
    hull = box_area(torch.cat([torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])], -1))
    return iou - (hull - union) / hull.clamp(min=eps)


def patch_coverage(boxes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Share of each patch cell of a ``grid`` ``(h, w)`` over the model frame inside each normalised xyxy box:
    ``[..., R, 4]`` → ``[..., R, h*w]`` in [0, 1], cells row-major like the trunk's tokens."""
    h, w = grid
    edges_x = torch.arange(w + 1, device=boxes.device, dtype=boxes.dtype) / w
    edges_y = torch.arange(h + 1, device=boxes.device, dtype=boxes.dtype) / h

    def overlap(lo: torch.Tensor, hi: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        inter = torch.minimum(hi[..., None], edges[1:]) - torch.maximum(lo[..., None], edges[:-1])
        return inter.clamp(min=0) * (edges.numel() - 1)  # [..., R, cells], as a share of one cell

    ox = overlap(boxes[..., 0], boxes[..., 2], edges_x)  # [..., R, w]
    oy = overlap(boxes[..., 1], boxes[..., 3], edges_y)  # [..., R, h]
    return (oy[..., :, None] * ox[..., None, :]).flatten(-2)


def round_pixel_boxes(boxes: torch.Tensor) -> list[list[int]]:
    """Pixel xyxy float boxes ``[N, 4]`` → lists of ints (for display and text output)."""
    _check_tensor(boxes, "boxes")
    finite = torch.isfinite(boxes).all(-1)
    if not finite.all():
        raise ValueError(f"boxes: box {shown(boxes[~finite][0].tolist())} has no nearest int (NaN or infinite)")
    return [[int(math.floor(v + 0.5)) for v in row] for row in boxes.reshape(-1, 4).tolist()]


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy non-maximum suppression → kept indices ``[K]`` (long), highest score first.

    ``boxes`` ``[N, 4]`` xyxy, ``scores`` ``[N]``; a box is dropped when its IoU with a kept, higher-scoring box
    exceeds ``iou_threshold``. With ``labels`` ``[N]`` only boxes of the same label suppress each other.
    Ties in score keep the earlier box (stable sort), so the result does not depend on the platform.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order].double()
    iou = box_iou(ranked[:, None], ranked[None])  # [N, N]
    clash = iou > iou_threshold
    if labels is not None:
        ranked_labels = labels[order]
        clash &= ranked_labels[:, None] == ranked_labels[None]
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= clash[i]
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]
