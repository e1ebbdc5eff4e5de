"""Property-based tests of the box conventions (``loclip.encoder.boxes``).

Random, malformed and extreme input (NaN, ±inf, 1e308, huge integers, bools, strings, wrong shapes, empty
tensors, every tensor dtype, absurd image sizes) gives either a correct result or a ``ValueError``/``TypeError``
whose message starts with the field's name, never another exception and never a silent NaN; the conversions
agree with float64 references written here. CI runs the derandomised "ci" profile of tests/conftest.py;
``LOCLIP_FUZZ=long`` explores 20,000 examples per property (docs/reliability.md, Fuzzing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from loclip.encoder import boxes as B

NAME = "fuzzed"  # the field name every call passes; every error message must start with it

INTEGER_DTYPES = [
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint16,
    torch.uint32,
    torch.uint64,
]
FLOAT_DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.float8_e4m3fn,
    torch.float8_e4m3fnuz,
    torch.float8_e5m2,
    torch.float8_e5m2fnuz,
]
OTHER_DTYPES = [torch.bool, torch.complex64, torch.complex128, torch.float8_e8m0fnu]  # not coordinates
EXTREMES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    3.5e38,
    1e-45,
    5e-324,
    2.0**24 + 1,
    2.0**63,
    999.0,
    1000.0,
]

numbers = st.one_of(st.floats(), st.sampled_from(EXTREMES), st.integers(-(2**70), 2**70))
shapes = st.one_of(
    st.lists(st.integers(0, 3), max_size=2).map(lambda s: (*s, 4)),  # [..., 4], empty ones included
    st.lists(st.integers(0, 4), max_size=3).map(tuple),  # anything, scalars included
)


@st.composite
def tensors(
    draw: st.DrawFn, dtypes: list[torch.dtype] | None = None, values: st.SearchStrategy = numbers
) -> torch.Tensor:
    """A tensor of any dtype and shape (up to 64 elements) holding extreme values cast to that dtype."""
    shape = draw(shapes)
    n = math.prod(shape)
    data = draw(st.lists(values, min_size=n, max_size=n))
    dtype = draw(st.sampled_from(dtypes or INTEGER_DTYPES + FLOAT_DTYPES + OTHER_DTYPES))
    return torch.tensor([float(v) for v in data], dtype=torch.float64).reshape(shape).to(dtype)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.just(10**400),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.complex_numbers(),
    st.just(np.bool_(True)),
    st.just(np.float64("nan")),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner, inner, inner),
        st.dictionaries(st.text(max_size=2), inner, max_size=2),
    ),
    max_leaves=24,
)
box_rows = st.lists(st.lists(numbers, min_size=4, max_size=4), max_size=4)  # the likely shape, any values
NUMPY_DTYPES = [
    np.uint8,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
    np.complex64,
    np.complex128,
    np.object_,
    np.str_,
]


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """A numpy array of any dtype (object and string arrays included) and shape."""
    values = draw(tensors(dtypes=[torch.float64])).numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(draw(st.sampled_from(NUMPY_DTYPES)))


box_inputs = st.one_of(junk, box_rows, tensors(), arrays())


def result_or_named_error(call: Callable[[], Any], *fields: str) -> Any:
    """``call()``'s result, or ``None`` when it raised ``ValueError``/``TypeError`` with a short message that
    starts with one of ``fields`` (any other exception fails the test)."""
    try:
        return call()
    except (ValueError, TypeError) as e:
        message = str(e)
        assert message.startswith(fields), f"the message does not start with {fields}: {message!r}"
        assert len(message) < 600, f"a value was quoted in full: {message[:200]!r}…"
        return None


def assert_finite_boxes(out: torch.Tensor) -> None:
    assert out.is_floating_point() and out.dtype in (torch.float32, torch.float64)
    assert out.shape[-1] == 4 and bool(torch.isfinite(out).all())


def sizes(max_side: int = 100_000) -> st.SearchStrategy[tuple[int, int]]:
    """(height, width) with every aspect ratio, the extremes (1 x n, n x 1, 1 x 1) drawn often."""
    side = st.one_of(st.integers(1, max_side), st.sampled_from([1, 2, 3, max_side]))
    return st.tuples(side, side)


image_sizes = st.one_of(st.integers(1, 2048), st.sampled_from([1, 2, 224, 336, 384, 448]))

# --- converters that take user input: a result or a named error, never anything else -----------------------

CONVERTERS: dict[str, Callable[[Any], torch.Tensor]] = {
    "as_float_boxes": lambda x: B.as_float_boxes(x, NAME),
    "validate_normalized": lambda x: B.validate_normalized(x, NAME),
    "pixel_to_model": lambda x: B.pixel_to_model(x, (37, 500), 224, NAME),
    "model_to_pixel": lambda x: B.model_to_pixel(x, (1, 4000), 224, NAME),
    "coco_to_xyxy": lambda x: B.coco_to_xyxy(x, NAME),
    "xyxy_to_coco": lambda x: B.xyxy_to_coco(x, NAME),
    "from_bins": lambda x: B.from_bins(x, NAME),
}


@pytest.mark.parametrize("converter", sorted(CONVERTERS))
@given(boxes=box_inputs)
@example(boxes=[[0, 0, 10**400, 5]]).via("torch raised OverflowError")
@example(boxes=torch.ones(2, 4, dtype=torch.float8_e4m3fn)).via("float8: NotImplementedError")
@example(boxes=torch.zeros(3, 0)).via("a wrong shape that is empty became [0, 4]")
@example(boxes=[[True, False, True, True]]).via("bools were read as 0 and 1")
@example(boxes=np.ones((1, 4), dtype=np.complex64)).via("the imaginary part was dropped")
def test_converters_give_finite_boxes_or_a_named_error(converter: str, boxes: Any) -> None:
    out = result_or_named_error(lambda: CONVERTERS[converter](boxes), NAME)
    if out is not None:
        assert_finite_boxes(out)


@given(boxes=box_inputs)
def test_to_bins_gives_bins_or_a_named_error(boxes: Any) -> None:
    out = result_or_named_error(lambda: B.to_bins(boxes, NAME), NAME)
    if out is not None:
        assert out.dtype == torch.long and out.shape[-1] == 4
        assert out.numel() == 0 or (int(out.min()) >= 0 and int(out.max()) <= B.NUM_BINS - 1)


@given(
    boxes=box_inputs,
    size=st.one_of(sizes(), st.tuples(st.integers(1, 50), st.integers(1, 50))),
    tolerance=st.sampled_from([0.0, 0.5, B.EDGE_TOLERANCE, 3.0]),
)
@example(boxes=[[0, 0, 10**400, 5]], size=(10, 10), tolerance=1.0).via("OverflowError stopped the data loader")
def test_check_pixel_box_gives_a_reason_or_a_clipped_box(boxes: Any, size: tuple[int, int], tolerance: float) -> None:
    """The data loaders' check never raises: a reason, or the box clipped to the image, as the tensor rules
    (``check_xyxy_order``, ``clip_to_size`` on a float64 tensor, and ``check_in_image`` at the one tolerance) say."""
    box = boxes[0] if isinstance(boxes, list) and boxes else boxes
    out = B.check_pixel_box(box, size, tolerance)
    if not _four_numbers(box):
        assert out == "not_a_box"
        return
    t = torch.tensor([[float(v) for v in box]], dtype=torch.float64)
    if out == "inverted":
        with pytest.raises(ValueError, match="x2 < x1"):
            B.check_xyxy_order(t)
        return
    far = (t[0, :2] < -tolerance).any() or t[0, 2] > size[1] + tolerance or t[0, 3] > size[0] + tolerance
    assert (out == "outside") == bool(far)
    if out != "outside":
        assert all(isinstance(v, float) for v in out) and list(out) == B.clip_to_size(t, size)[0].tolist()
    if tolerance == B.EDGE_TOLERANCE and out == "outside":
        with pytest.raises(ValueError, match="px outside the"):
            B.check_in_image(t, size)
    elif tolerance == B.EDGE_TOLERANCE:
        assert B.check_in_image(t, size)[0].tolist() == list(out)


def _four_numbers(box: Any) -> bool:
    """Four finite ints or floats (not bools), as a JSON bbox should be."""

    def number(v: Any) -> bool:
        try:
            return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(float(v))
        except OverflowError:
            return False

    return isinstance(box, (list, tuple)) and len(box) == 4 and all(number(v) for v in box)


# --- tensor helpers (losses, post-processing): a result or a named error for any tensor --------------------


def _moderate(t: Any) -> bool:
    """A float32/64 tensor whose coordinates are finite and within 1e9 (any image's pixels): no NaN may come out."""
    return (
        isinstance(t, torch.Tensor)
        and t.dtype in (torch.float32, torch.float64)
        and bool(torch.isfinite(t).all())
        and (t.numel() == 0 or float(t.abs().max()) <= 1e9)
    )


HELPERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "check_xyxy_order": (lambda t: B.check_xyxy_order(t, NAME), NAME),
    "check_in_image": (lambda t: B.check_in_image(t, (20, 30), NAME), NAME),
    "clip_to_size": (lambda t: B.clip_to_size(t, (20, 30)), "boxes"),
    "cxcywh_to_xyxy": (B.cxcywh_to_xyxy, "boxes"),
    "xyxy_to_cxcywh": (B.xyxy_to_cxcywh, "boxes"),
    "box_area": (B.box_area, "boxes"),
    "box_iou": (lambda t: B.box_iou(t, t), "a"),
    "generalized_box_iou": (lambda t: B.generalized_box_iou(t, t), "a"),
    "round_pixel_boxes": (B.round_pixel_boxes, "boxes"),
}


@pytest.mark.parametrize("helper", sorted(HELPERS))
@given(boxes=st.one_of(tensors(), junk))
@example(boxes=torch.zeros(2, 3)).via("shape [2, 3]: IndexError, RuntimeError or a silent wrong answer")
@example(boxes=torch.ones(1, 4, dtype=torch.bool)).via("bool: RuntimeError")
@example(boxes=torch.tensor([[math.inf, 0.0, 1.0, 1.0]])).via("round_pixel_boxes: OverflowError")
@example(boxes=[[0.0, 0.0, 1.0, 1.0]]).via("a list: AttributeError")
def test_tensor_helpers_give_a_result_or_a_named_error(helper: str, boxes: Any) -> None:
    call, field = HELPERS[helper]
    out = result_or_named_error(lambda: call(boxes), field + " ", field + ":", field + "[")
    if isinstance(out, torch.Tensor) and _moderate(boxes):
        assert not bool(torch.isnan(out).any()), f"{helper} made a NaN from finite boxes"
    if helper == "round_pixel_boxes" and out is not None:
        assert all(isinstance(v, int) for row in out for v in row)


@given(
    rows=st.lists(st.tuples(*[st.floats(-10, 40)] * 4), min_size=1, max_size=3),
    where=st.integers(0, 11),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_checks_never_pass_a_nan_box(rows: list[tuple[float, ...]], where: int, dtype: torch.dtype) -> None:
    boxes = torch.tensor(rows, dtype=dtype)
    boxes.view(-1)[where % boxes.numel()] = math.nan
    with pytest.raises(ValueError, match=NAME):
        B.check_xyxy_order(boxes, NAME)
    with pytest.raises(ValueError, match=NAME):
        B.check_in_image(boxes, (20, 30), NAME)


# --- sizes: (height, width) pairs and image sizes ------------------------------------------------------------

size_junk = st.one_of(
    junk,
    st.tuples(scalars, scalars),
    st.tuples(st.integers(-5, 2**40), st.integers(-5, 2**40)),
    st.tuples(st.floats(), st.floats()),
    st.sampled_from(
        [
            (5,),
            (10**400, 5),
            (1, 10**50),
            (2.7, 5),
            (np.int64(3), np.int64(4)),
            (True, 4),
            torch.tensor([3, 4]),
            torch.tensor([3.0, 4.0]),
            (480.0, 640.0),
        ]
    ),
)
SIZED: dict[str, Callable[[Any], Any]] = {
    "pixel_to_model": lambda s: B.pixel_to_model([[0.0, 0.0, 1.0, 1.0]], s, 224, NAME),
    "model_to_pixel": lambda s: B.model_to_pixel([[0.0, 0.0, 1.0, 1.0]], s, 224, NAME),
    "clip_to_size": lambda s: B.clip_to_size(torch.tensor([[-1.0, 0.0, 1.0, 1e9]]), s),
    "check_in_image": lambda s: B.check_in_image(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), s, NAME),
}


@pytest.mark.parametrize("function", sorted(SIZED))
@given(size=size_junk)
def test_sizes_give_a_result_or_a_named_error(function: str, size: Any) -> None:
    out = result_or_named_error(lambda: SIZED[function](size), "size")
    if isinstance(out, torch.Tensor):
        assert_finite_boxes(out)


sides = st.one_of(
    scalars,
    st.integers(-5, 2**40),
    st.sampled_from([np.int64(3), torch.tensor(4), torch.tensor(4.0), torch.tensor(True), 480.0, 2.5, 2**31, 10**400]),
)


@given(h=sides, w=sides, image_size=sides)
def test_letterbox_gives_a_geometry_or_a_named_error(h: Any, w: Any, image_size: Any) -> None:
    box = result_or_named_error(
        lambda: B.Letterbox(h, w, image_size), "Letterbox height", "Letterbox width", "Letterbox image_size"
    )
    if box is not None:
        fx, fy = box.axis_factors()
        assert 0 < fx <= 1 and 0 < fy <= 1


# --- properties of the geometry, against float64 / exact references -----------------------------------------


@given(size=sizes(max_side=B.MAX_SIDE), image_size=image_sizes)
@example(size=(1, 4000), image_size=224).via("the extreme aspect ratio of the brief")
def test_letterbox_matches_an_exact_reference(size: tuple[int, int], image_size: int) -> None:
    """The long side becomes ``image_size``; the short side is its exact scaled length rounded (at least 1)."""
    h, w = size
    box = B.Letterbox(h, w, image_size)
    for side, resized in ((h, box.resized_height), (w, box.resized_width)):
        exact = Fraction(side * image_size, max(h, w))
        assert 1 <= resized <= image_size
        if side == max(h, w):
            assert resized == image_size
        else:  # rounded to the nearest int (up to float error at a tie), never below one pixel
            assert abs(resized - exact) <= Fraction(1, 2) + Fraction(1, 10**9) or (resized == 1 and exact < 1)


def _box_in(draw: st.DrawFn, h: int, w: int) -> list[float]:
    """A pixel xyxy box anywhere inside an h x w image, degenerate boxes and the borders included."""
    fractions = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0]))
    xs = sorted(draw(st.tuples(fractions, fractions)))
    ys = sorted(draw(st.tuples(fractions, fractions)))
    return [xs[0] * w, ys[0] * h, xs[1] * w, ys[1] * h]


@st.composite
def images_and_boxes(draw: st.DrawFn, max_side: int) -> tuple[tuple[int, int], int, list[list[float]]]:
    h, w = draw(sizes(max_side))
    return (h, w), draw(image_sizes), [_box_in(draw, h, w) for _ in range(draw(st.integers(1, 4)))]


@given(case=images_and_boxes(max_side=2**23))
@example(case=((1, 4000), 224, [[0.0, 0.0, 4000.0, 1.0], [1234.5, 0.25, 1234.5, 0.75]]))
@example(case=((4000, 1), 224, [[0.0, 0.0, 1.0, 4000.0]]))
@example(case=((1, 1), 1, [[0.0, 0.0, 1.0, 1.0]]))
@example(case=((2**23, 3), 224, [[0.0, 2**23 - 1.0, 3.0, 2.0**23]]))
def test_pixel_model_pixel_round_trip_float32(case: tuple[tuple[int, int], int, list[list[float]]]) -> None:
    """DESIGN's promise: pixel → model frame → pixel within one pixel, for any size and aspect ratio. float32
    boxes hold it for sides up to 2^23 pixels (test_pixel_model_pixel_round_trip_float64 for any size)."""
    size, image_size, pixel = case
    px = torch.tensor(pixel, dtype=torch.float32)
    model = B.pixel_to_model(px, size, image_size)
    B.validate_normalized(model)  # a box inside the image lies inside the model frame
    back = B.model_to_pixel(model, size, image_size)
    assert back.dtype == torch.float32
    assert float((back.double() - px.double()).abs().max()) <= 1.0


@given(case=images_and_boxes(max_side=B.MAX_SIDE))
def test_pixel_model_pixel_round_trip_float64(case: tuple[tuple[int, int], int, list[list[float]]]) -> None:
    size, image_size, pixel = case
    px = torch.tensor(pixel, dtype=torch.float64)
    back = B.model_to_pixel(B.pixel_to_model(px, size, image_size), size, image_size)
    assert float((back - px).abs().max()) <= 1e-3


@given(case=images_and_boxes(max_side=100_000))
def test_pixel_to_model_matches_a_float64_reference(case: tuple[tuple[int, int], int, list[list[float]]]) -> None:
    """Normalised = pixel × resized side / (original side × image_size), the letterbox padding right and below."""
    (h, w), image_size, pixel = case
    box = B.Letterbox(h, w, image_size)
    ref = [
        [
            x1 * box.resized_width / (w * image_size),
            y1 * box.resized_height / (h * image_size),
            x2 * box.resized_width / (w * image_size),
            y2 * box.resized_height / (h * image_size),
        ]
        for x1, y1, x2, y2 in pixel
    ]
    out = B.pixel_to_model(torch.tensor(pixel, dtype=torch.float64), (h, w), image_size)
    assert torch.allclose(out, torch.tensor(ref, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    assert float(out[:, 2].max()) <= box.resized_width / image_size + 1e-12  # inside the image's part of the frame
    assert float(out[:, 3].max()) <= box.resized_height / image_size + 1e-12


@given(boxes=tensors(dtypes=[torch.float32], values=st.floats(-3e38, 3e38)), size=sizes(), image_size=image_sizes)
def test_model_to_pixel_lands_in_the_image(boxes: torch.Tensor, size: tuple[int, int], image_size: int) -> None:
    """Any finite prediction, padding and far outside included, maps into the original image."""
    out = result_or_named_error(lambda: B.model_to_pixel(boxes, size, image_size, NAME), NAME)
    if out is None:
        assert boxes.shape[-1:] != (4,)
        return
    assert_finite_boxes(out)
    h, w = size
    assert out.numel() == 0 or (
        float(out.min()) >= 0 and float(out[..., 0::2].max()) <= w and float(out[..., 1::2].max()) <= h
    )


def normalised_boxes(max_boxes: int = 6) -> st.SearchStrategy[list[list[float]]]:
    """Valid model-frame boxes: corners in [0, 1] (the edges and tiny values drawn often), x1 <= x2, y1 <= y2."""
    v = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 0.5 / 999, 0.5, 998.5 / 999, 1e-30]))

    def box(c: tuple[float, float, float, float]) -> list[float]:
        return [min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])]

    return st.lists(st.tuples(v, v, v, v).map(box), max_size=max_boxes)


@given(boxes=normalised_boxes(), dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
def test_bins_round_trip_within_half_a_step(boxes: list[list[float]], dtype: torch.dtype) -> None:
    """Normalised → 0..999 → normalised moves a corner by at most half a bin (float64 reference: round(v * 999))."""
    t = torch.tensor(boxes, dtype=dtype).reshape(-1, 4)
    bins = B.to_bins(t)
    exact = t.double() * (B.NUM_BINS - 1)
    assert bool(((bins.double() - exact).abs() <= 0.5 + 1e-4).all())
    assert bool(((B.from_bins(bins).double() - t.double()).abs() <= 0.5 / 999 + 1e-6).all())


@given(
    bins=st.lists(
        st.tuples(*[st.integers(0, 999)] * 4).map(
            lambda b: [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
        ),
        max_size=6,
    )
)
def test_bins_to_normalised_and_back_is_exact(bins: list[list[int]]) -> None:
    t = torch.tensor(bins, dtype=torch.long).reshape(-1, 4)
    assert torch.equal(B.to_bins(B.from_bins(t)), t)


@given(
    xywh=st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 1e6), st.floats(0, 1e6)),
        min_size=1,
        max_size=4,
    )
)
def test_coco_round_trip_matches_float64(xywh: list[tuple[float, float, float, float]]) -> None:
    t = torch.tensor(xywh, dtype=torch.float64)
    xyxy = B.coco_to_xyxy(t)
    ref = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in xywh], dtype=torch.float64)
    assert torch.equal(xyxy, ref)
    assert torch.allclose(B.xyxy_to_coco(xyxy), t, rtol=0, atol=1e-9)


@given(boxes=normalised_boxes(max_boxes=4))
def test_cxcywh_round_trip(boxes: list[list[float]]) -> None:
    t = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    assert torch.allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(t)), t, rtol=0, atol=1e-12)


def _iou_reference(a: list[float], b: list[float], eps: float = 1e-9) -> tuple[float, float]:
    """IoU and GIoU of two xyxy boxes, naively in float64, dividing by at least ``eps`` as the losses do."""

    def area(x1: float, y1: float, x2: float, y2: float) -> float:
        return max(x2 - x1, 0.0) * max(y2 - y1, 0.0)

    inter = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    union = area(*a) + area(*b) - inter
    iou = inter / max(union, eps)
    hull = area(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    return iou, iou - (hull - union) / max(hull, eps)


coordinates = st.floats(-1e6, 1e6)
any_boxes = st.tuples(coordinates, coordinates, coordinates, coordinates).map(list)  # inverted ones included


@given(a=any_boxes, b=any_boxes)
@example(a=[0.0, 0.0, 1.0, 1.0], b=[0.0, 0.0, 1.0, 1.0])
@example(a=[0.5, 0.5, 0.5, 0.5], b=[0.5, 0.5, 0.5, 0.5])
@example(a=[3.0, 3.0, 1.0, 1.0], b=[0.0, 0.0, 4.0, 4.0])
def test_iou_and_giou_match_float64(a: list[float], b: list[float]) -> None:
    iou, giou = _iou_reference(a, b)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    got_iou, got_giou = float(B.box_iou(ta, tb)), float(B.generalized_box_iou(ta, tb))
    assert 0 <= got_iou <= 1 and -1 <= got_giou <= 1 and got_giou <= got_iou + 1e-12
    assert got_iou == pytest.approx(iou, abs=1e-6) and got_giou == pytest.approx(giou, abs=1e-6)
    assert float(B.box_iou(tb, ta)) == got_iou  # symmetric


@given(boxes=normalised_boxes(max_boxes=4), size=sizes())
def test_rounded_pixels_are_the_nearest_ints(boxes: list[list[float]], size: tuple[int, int]) -> None:
    px = B.model_to_pixel(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), size, 224)
    for row, rounded in zip(px.tolist(), B.round_pixel_boxes(px)):
        assert all(abs(v - r) <= 0.5 for v, r in zip(row, rounded))
