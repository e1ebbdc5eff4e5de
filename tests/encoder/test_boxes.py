"""Unit tests for the box conventions module (the one place box formats are converted)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loclip.encoder import boxes as B


def test_coco_xywh_round_trip() -> None:
    xywh = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 0.0, 5.0]])
    xyxy = B.coco_to_xyxy(xywh)
    assert xyxy.tolist() == [[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 0.0, 5.0]]
    assert torch.equal(B.xyxy_to_coco(xyxy), xywh)
    with pytest.raises(ValueError, match=r"non-negative width and height, got \[0.0, 0.0, -1.0, 5.0\]"):
        B.coco_to_xyxy([[0, 0, -1, 5]])


def test_coco_conversions_refuse_what_has_no_result() -> None:
    with pytest.raises(ValueError, match=r"boxes: box \[3\.0+\d+e\+38, 0.0, 3\.0+\d+e\+38, 1.0\] converts past torch"):
        B.coco_to_xyxy([[3e38, 0.0, 3e38, 1.0]])  # x + w was a silent inf
    with pytest.raises(ValueError, match="converts past"):
        B.xyxy_to_coco([[-3e38, 0.0, 3e38, 1.0]])
    with pytest.raises(ValueError, match=r"boxes\[0\] = \[5.0, 0.0, 1.0, 1.0\] has x2 < x1"):
        B.xyxy_to_coco([[5.0, 0.0, 1.0, 1.0]])  # gave a negative width that coco_to_xyxy refuses


def test_cxcywh_round_trip() -> None:
    xyxy = torch.tensor([[0.1, 0.2, 0.5, 0.9]])
    assert torch.allclose(B.xyxy_to_cxcywh(xyxy), torch.tensor([[0.3, 0.55, 0.4, 0.7]]))
    assert torch.allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(xyxy)), xyxy)


def test_bins_round_trip_within_half_a_bin() -> None:
    corners = torch.rand(500, 2, 2).sort(dim=1).values  # sorted so x1 <= x2, y1 <= y2
    boxes = torch.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], -1)
    bins = B.to_bins(boxes)
    assert bins.dtype == torch.long and bins.min() >= 0 and bins.max() <= B.NUM_BINS - 1
    assert (B.from_bins(bins) - boxes).abs().max() <= 0.5 / 999 + 1e-6
    assert B.to_bins([[0.0, 0.0, 1.0, 1.0]]).tolist() == [[0, 0, 999, 999]]
    with pytest.raises(ValueError, match="0..999"):
        B.from_bins([[0, 0, 1000, 5]])


@pytest.mark.parametrize(
    ("bins", "error", "match"),
    [
        ([[math.nan, 0, 1, 1]], ValueError, "NaN"),  # came back as a NaN box
        ([[0.5, 0, 1, 1]], ValueError, r"integers in 0\.\.999, got \[0.5, 0.0, 1.0, 1.0\]"),  # half a bin passed
        ([[1, 2, 3]], ValueError, r"shape \[\.\.\., 4\]"),  # a [1, 3] box came back
        ([[True, False, True, True]], TypeError, "not booleans"),  # read as bins 1, 0, 1, 1
        ([[5, 0, 1, 1]], ValueError, "x2 < x1"),  # an inverted box that to_bins refuses
        (None, TypeError, "boxes must be a tensor or nested sequence"),  # RuntimeError
        ([[10**400, 0, 1, 1]], ValueError, "past float's range"),  # torch's overflow error, naming nothing
        ([[0, 0, 999, 10**6]], ValueError, r"got \[0.0, 0.0, 999.0, 1000000.0\]"),  # quoted the whole tensor
    ],
)
def test_from_bins_refuses_what_is_not_bins(bins, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        B.from_bins(bins)


def test_iou_and_giou_hand_computed() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 3.0, 4.0]])
    # overlap 1 / union 7, hull 9; disjoint: union 2, hull 3; identical
    assert torch.allclose(B.box_iou(a, b), torch.tensor([1 / 7, 0.0, 1.0]))
    assert torch.allclose(B.generalized_box_iou(a, b), torch.tensor([1 / 7 - 2 / 9, -1 / 3, 1.0]))
    assert B.box_iou(a[:, None], b[None]).shape == (3, 3)  # all pairs by broadcasting
    assert B.box_area(torch.tensor([2.0, 2.0, 1.0, 5.0])) == 0  # degenerate box has no area


@pytest.mark.parametrize(
    ("boxes", "error", "match"),
    [
        ([[0.0, 0.0, 1.2, 1.0]], ValueError, r"in \[0, 1\].*\[0.0, 0.0, 1.2"),
        ([[-0.1, 0.0, 0.5, 0.5]], ValueError, "outside"),
        ([[0.6, 0.0, 0.5, 0.5]], ValueError, r"x2 < x1"),
        ([[0.1, 0.2, 0.3]], ValueError, r"shape \[\.\.\., 4\], got \(1, 3\)"),
        ([0.1, 0.2], ValueError, r"shape \[\.\.\., 4\]"),
        ([["a", "b", "c", "d"]], TypeError, "nested sequence of numbers"),
        ([[0.1, float("nan"), 0.3, 0.4]], ValueError, "NaN"),
    ],
)
def test_validate_normalized_errors(boxes: list, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        B.validate_normalized(boxes, name="boxes")


def test_validate_normalized_accepts_valid_and_empty() -> None:
    assert B.validate_normalized([[0.0, 0.0, 1.0, 1.0]]).shape == (1, 4)
    assert B.validate_normalized([]).shape == (0, 4)


def test_letterbox_geometry() -> None:
    tall = B.Letterbox(height=500, width=37, image_size=224)
    assert (tall.resized_height, tall.resized_width) == (224, 17)  # round(37 * 224 / 500) = round(16.58)
    thin = B.Letterbox(height=1, width=4000, image_size=224)
    assert (thin.resized_height, thin.resized_width) == (1, 224)  # never below one pixel
    with pytest.raises(ValueError, match="height must be a positive int"):
        B.Letterbox(0, 5, 224)


def test_pixel_model_round_trip_and_frame() -> None:
    size = (500, 37)  # (height, width)
    full = B.pixel_to_model([[0.0, 0.0, 37.0, 500.0]], size, 224)
    assert torch.allclose(full, torch.tensor([[0.0, 0.0, 17 / 224, 1.0]]))  # the image fills 17 of 224 columns
    box = torch.tensor([[3.0, 40.5, 20.25, 499.0]])
    assert torch.allclose(B.model_to_pixel(B.pixel_to_model(box, size, 224), size, 224), box)
    whole = B.model_to_pixel([[0.0, 0.0, 1.0, 1.0]], size, 224)  # the padding maps outside and is clamped
    assert torch.allclose(whole, torch.tensor([[0.0, 0.0, 37.0, 500.0]]))


def test_check_in_image_clips_within_one_pixel_and_names_box_and_size_beyond() -> None:
    """The one box rule: a box up to ``EDGE_TOLERANCE`` (1 px) past an edge is clipped, one further is refused."""
    inside = torch.tensor([[0.0, 0.0, 50.0, 20.0]])
    assert torch.equal(B.check_in_image(inside, (20, 50)), inside)
    near = torch.tensor([[-1.0, 0.5, 51.0, 21.0]], dtype=torch.float64)
    clipped = B.check_in_image(near, (20, 50))
    assert clipped.dtype == torch.float64 and clipped.tolist() == [[0.0, 0.5, 50.0, 20.0]]
    with pytest.raises(
        ValueError,
        match=r"^boxes\[0\] = \[0.0, 0.0, 51.5, 20.0\] reaches more than 1 px outside the "
        r"50x20 \(width x height\) image; hint$",
    ):
        B.check_in_image(torch.tensor([[0.0, 0.0, 51.5, 20.0]]), (20, 50), hint="; hint")
    assert B.check_pixel_box([-1.01, 0, 5, 5], (20, 50)) == "outside" and B.EDGE_TOLERANCE == 1.0
    with pytest.raises(ValueError, match=r"^box 3 must be four finite numbers \[x1, y1, x2, y2\], got \[1, 2\]$"):
        B.pixel_box_in_image([1, 2], (20, 50), "box 3")
    with pytest.raises(ValueError, match=r"^box 3 = \[5.0, 0.0, 1.0, 5.0\] has x2 < x1 or y2 < y1"):
        B.pixel_box_in_image([5, 0, 1, 5], (20, 50), "box 3")


def test_round_pixel_boxes() -> None:
    assert B.round_pixel_boxes(torch.tensor([[0.4, 0.5, 9.49, 9.5]])) == [[0, 1, 9, 10]]


@pytest.mark.parametrize(
    "box, expected",
    [
        ([2, 3, 10, 12], (2.0, 3.0, 10.0, 12.0)),
        ([-0.5, 0, 20.8, 16.5], (0.0, 0.0, 20.0, 16.0)),  # within the tolerance: clipped
        ([5, 5, 25, 9], "outside"),
        ([-2, 0, 5, 5], "outside"),
        ([10, 3, 2, 12], "inverted"),
        ([1, 9, 5, 2], "inverted"),
        ([1, 1, 5], "not_a_box"),
        ([1, 1, 5, float("nan")], "not_a_box"),
        ([True, 1, 2, 3], "not_a_box"),
        (5, "not_a_box"),
        ([0, 0, 10**400, 5], "not_a_box"),
        ([-(10**400), 0, 5, 5], "not_a_box"),  # past float: was OverflowError
    ],
)
def test_check_pixel_box_follows_the_tensor_rules(box, expected) -> None:
    from loclip.encoder.boxes import check_pixel_box

    assert check_pixel_box(box, (16, 20)) == expected  # size is (height, width); 1 px: EDGE_TOLERANCE
    if isinstance(expected, tuple):  # the same box as check_in_image accepts and clip_to_size returns
        clipped = B.clip_to_size(torch.tensor([box], dtype=torch.float64), (16, 20))
        assert clipped[0].tolist() == list(expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.float8_e5m2])
def test_narrow_floats_are_computed_in_float32(dtype: torch.dtype) -> None:
    # bfloat16 has no 999: a box edge at 1.0 became bin 1000, which the box-text parser refuses
    assert B.to_bins(torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=dtype)).tolist() == [[0, 0, 0, 999]]
    # float8 had no isfinite (NotImplementedError); float16 overflowed a 100,000 px image to inf
    out = B.model_to_pixel(torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=dtype), (10, 100_000), 224)
    assert out.dtype == torch.float32 and out.tolist() == [[0.0, 0.0, 100_000.0, 10.0]]


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint16, torch.uint32, torch.uint64])
def test_every_integer_width_is_read(dtype: torch.dtype) -> None:
    t = B.as_float_boxes(torch.tensor([[1, 2, 3, 4]], dtype=dtype), "boxes")  # int8 and the wide uints were refused
    assert t.dtype == torch.float32 and t.tolist() == [[1.0, 2.0, 3.0, 4.0]]


@pytest.mark.parametrize(
    ("boxes", "error", "match"),
    [
        ([[0, 0, 10**400, 5]], ValueError, r"boxes holds a number past float's range: \[\[0, 0, 1000"),  # OverflowError
        ([[True, False, True, True]], TypeError, "not booleans"),  # was read as [1.0, 0.0, 1.0, 1.0]
        ([(0.5, 0.5, np.True_, 1.0)], TypeError, "not booleans"),
        (np.ones((1, 4), dtype=np.complex64), TypeError, "got dtype torch.complex64"),  # the imaginary part was dropped
        (torch.zeros(3, 0), ValueError, r"shape \[\.\.\., 4\], got \(3, 0\)"),  # was an empty [0, 4]
        ([[1e308, 0, 1, 1]], ValueError, r"box \[inf, 0.0, 1.0, 1.0\] has a NaN or infinite coordinate"),
    ],
)
def test_as_float_boxes_refuses_what_is_not_boxes(boxes, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        B.as_float_boxes(boxes, "boxes")


def test_as_float_boxes_keeps_empty_lists_empty() -> None:
    assert B.as_float_boxes([], "boxes").shape == (0, 4)
    assert B.as_float_boxes(torch.zeros(2, 0, 4, dtype=torch.int64), "boxes").dtype == torch.float32
    assert B.as_float_boxes(np.zeros((0, 4)), "boxes").dtype == torch.float32


SIZED = {
    "pixel_to_model": lambda size: B.pixel_to_model([[0.0, 0.0, 3.0, 2.0]], size, 224),
    "model_to_pixel": lambda size: B.model_to_pixel([[0.0, 0.0, 1.0, 1.0]], size, 224),
    "clip_to_size": lambda size: B.clip_to_size(torch.tensor([[-1.0, 0.0, 9.0, 9.0]]), size),
    "check_in_image": lambda size: B.check_in_image(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), size),
}


@pytest.mark.parametrize("function", sorted(SIZED))
@pytest.mark.parametrize(
    ("size", "error", "match"),
    [
        ((5,), TypeError, r"size must be a \(height, width\) pair, got \(5"),  # was IndexError
        (None, TypeError, r"size must be a \(height, width\) pair, got None"),
        ((math.inf, 5), TypeError, "size height must be an int, got inf"),  # was OverflowError
        ((5, math.nan), TypeError, "size width must be an int, got nan"),
        ((2.7, 5), TypeError, "size height must be an int, got 2.7"),  # was cut to 2
        ((True, 5), TypeError, "size height must be an int, got True"),
        ((0, 5), ValueError, "size height must be a positive int"),
        ((10**400, 5), ValueError, r"size height must be a positive int \(at most 2,147,483,647\)"),  # OverflowError
        ((1, 10**50), ValueError, "size width must be a positive int"),  # gave NaN boxes
    ],
)
def test_sizes_are_height_width_ints(function: str, size, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SIZED[function](size)


@pytest.mark.parametrize("size", [(np.int64(2), np.int64(3)), torch.tensor([2, 3]), (2.0, 3.0), [2, 3]])
def test_sizes_take_numpy_tensor_and_whole_float_ints(size) -> None:
    for call in SIZED.values():
        out, expected = call(size), call((2, 3))
        assert (out is None and expected is None) or torch.equal(out, expected)
    assert B.Letterbox(np.int64(2), 3, 224) == B.Letterbox(2, 3, 224)  # was refused as not an int


HELPERS = {
    "check_xyxy_order": B.check_xyxy_order,
    "check_in_image": lambda t: B.check_in_image(t, (20, 30)),
    "clip_to_size": lambda t: B.clip_to_size(t, (20, 30)),
    "cxcywh_to_xyxy": B.cxcywh_to_xyxy,
    "xyxy_to_cxcywh": B.xyxy_to_cxcywh,
    "box_area": B.box_area,
    "box_iou": lambda t: B.box_iou(t, t),
    "generalized_box_iou": lambda t: B.generalized_box_iou(t, t),
    "round_pixel_boxes": B.round_pixel_boxes,
}


@pytest.mark.parametrize("helper", sorted(HELPERS))
@pytest.mark.parametrize(
    ("boxes", "error", "match"),
    [
        (torch.zeros(2, 3), ValueError, r"must have shape \[\.\.\., 4\], got \(2, 3\)"),  # IndexError or a wrong answer
        (torch.zeros(3), ValueError, r"must have shape \[\.\.\., 4\], got \(3,\)"),
        (torch.ones(1, 4, dtype=torch.bool), TypeError, "got dtype torch.bool"),  # RuntimeError
        (torch.ones(1, 4, dtype=torch.uint8), TypeError, "got dtype torch.uint8"),  # 1 - 2 wrapped to 255
        ([[0.0, 0.0, 1.0, 1.0]], TypeError, "must be a torch.Tensor"),  # AttributeError
    ],
)
def test_tensor_helpers_refuse_what_is_not_a_box_tensor(helper: str, boxes, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        HELPERS[helper](boxes)


def test_tensor_helpers_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"a \(2, 4\) and b \(3, 4\) do not broadcast.*a\[:, None\]"):
        B.box_iou(torch.zeros(2, 4), torch.zeros(3, 4))  # RuntimeError from deep inside torch
    nan_box = torch.tensor([[0.0, math.nan, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"boxes\[0\] = \[0.0, nan, 1.0, 1.0\]"):
        B.check_in_image(nan_box, (20, 30))  # a NaN box passed the check
    with pytest.raises(ValueError, match=r"box \[inf, 0.0, 1.0, 1.0\] has no nearest int"):
        B.round_pixel_boxes(torch.tensor([[math.inf, 0.0, 1.0, 1.0]]))  # OverflowError
