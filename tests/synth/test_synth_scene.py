"""Scene generation: determinism, tight boxes, visibility, splits and the held-out composition split."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from loclip.synth import COLOURS, NOVEL_PAIRS, SEEN_PAIRS, SHAPES, Scene, SceneConfig, generate_scene
from loclip.synth.background import make_background
from loclip.synth.layout import place_masks
from loclip.synth.shapes import shape_mask
from loclip.synth.world import BACKGROUND_JITTER, BACKGROUNDS, SIZES


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight pixel xyxy (x2/y2 exclusive) of a bool mask, computed independently of the generator."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _same(a: Scene, b: Scene) -> bool:
    return np.array_equal(a.image, b.image) and a.objects == b.objects and a.text == b.text


def test_same_arguments_same_scene_and_any_scene_alone() -> None:
    batch = [generate_scene("train", i, 3) for i in range(20)]
    assert all(_same(generate_scene("train", i, 3), s) for i, s in enumerate(batch))
    assert _same(generate_scene("train", 17, 3), batch[17])  # regenerated alone, out of order


def test_different_seed_index_or_split_differ() -> None:
    ref = generate_scene("train", 0, 0)
    for other in (generate_scene("train", 0, 1), generate_scene("train", 1, 0), generate_scene("val", 0, 0)):
        assert not np.array_equal(ref.image, other.image)
    train = {generate_scene("train", i, 0).image.tobytes() for i in range(50)}
    test = {generate_scene("test", i, 0).image.tobytes() for i in range(50)}
    assert len(train) == 50 and not train & test


def test_boxes_are_tight_around_the_drawn_pixels(scenes: list[Scene]) -> None:
    """From the labels: each object's pixels lie in its box and touch all four edges. From the image
    alone: an object whose colour is unique in the scene is exactly the pixels of that colour."""
    checked_by_colour = 0
    for scene in scenes:
        colours = [o.colour for o in scene.objects]
        for k, obj in enumerate(scene.objects):
            own = scene.labels == k + 1
            assert _bbox(own) == obj.box, (scene.key, obj)
            assert (scene.image[own] == COLOURS[obj.colour]).all()
            if colours.count(obj.colour) == 1:
                exact = (scene.image == COLOURS[obj.colour]).all(axis=-1)
                assert np.array_equal(exact, own), (scene.key, obj)
                checked_by_colour += 1
    assert checked_by_colour > 500


def test_placement_keeps_every_object_mostly_visible() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        shapes, sides = rng.integers(len(SHAPES), size=6), rng.integers(8, 24, size=6)
        masks = [shape_mask(SHAPES[int(i)], int(s)) for i, s in zip(shapes, sides)]
        labels, origins = place_masks(rng, masks, 64, min_visible=0.6, tries=30)
        placed = [k for k, o in enumerate(origins) if o is not None]
        assert placed[:1] == [0]  # the first object always finds room
        for k in placed:
            assert (labels == k + 1).sum() >= 0.6 * masks[k].sum(), (trial, k)
        assert set(np.unique(labels)) == {0, *(k + 1 for k in placed)}


def test_object_counts_and_sizes(scenes: list[Scene]) -> None:
    assert {len(s.objects) for s in scenes} == {1, 2, 3, 4, 5, 6}
    for scene in scenes:
        for obj in scene.objects:
            hi = round(SIZES[obj.size][1] * scene.size)
            assert max(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]) <= hi, (scene.key, obj)


def test_composition_split_holds_out_pairs(scenes: list[Scene]) -> None:
    for scene in scenes:
        pairs = {(o.colour, o.shape) for o in scene.objects}
        if scene.split == "novel":
            assert pairs & NOVEL_PAIRS, scene.key
        else:
            assert not pairs & NOVEL_PAIRS, scene.key


def test_novel_pairs_leave_every_colour_and_shape_seen() -> None:
    assert len(NOVEL_PAIRS) == len(COLOURS) == len(SHAPES)
    assert {c for c, _ in NOVEL_PAIRS} == set(COLOURS) and {s for _, s in NOVEL_PAIRS} == set(SHAPES)
    assert {c for c, _ in SEEN_PAIRS} == set(COLOURS) and {s for _, s in SEEN_PAIRS} == set(SHAPES)


def test_colours_are_recoverable_from_pixels() -> None:
    """Object colours are far apart, and no background pixel can come near an object colour."""
    dist = lambda a, b: float(np.linalg.norm(np.subtract(a, b, dtype=float)))  # noqa: E731
    assert min(dist(a, b) for a, b in itertools.combinations(COLOURS.values(), 2)) >= 90
    jitter = BACKGROUND_JITTER * np.sqrt(3)
    assert min(dist(c, b) for c in COLOURS.values() for b in BACKGROUNDS.values()) - jitter >= 45
    bg = make_background(np.random.default_rng(0), BACKGROUNDS["grey"], 64).astype(int)
    assert np.abs(bg - 128).max() <= BACKGROUND_JITTER and bg.std() > 3  # noisy, but bounded


def test_shapes_are_distinct_even_when_small() -> None:
    side = round(SIZES["small"][0] * 32)  # the smallest drawn side at the smallest image size
    masks = {s: shape_mask(s, side) for s in SHAPES}
    assert all(m.any() for m in masks.values())
    for a, b in itertools.combinations(SHAPES, 2):
        assert not np.array_equal(masks[a], masks[b]), (a, b)


def test_image_size_is_configurable() -> None:
    scene = generate_scene("val", 4, 0, SceneConfig(image_size=128, min_objects=6, max_objects=6))
    assert scene.image.shape == (128, 128, 3) and scene.image.dtype == np.uint8
    assert scene.labels.shape == (128, 128) and len(scene.objects) >= 5


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: generate_scene("nope", 0, 0), "split"),
        (lambda: generate_scene("train", -1, 0), "index"),
        (lambda: generate_scene("train", 0, -5), "seed"),
        (lambda: generate_scene("train", 0, 1.5), "seed"),  # type: ignore[arg-type]
        (lambda: SceneConfig(image_size=8), "image_size"),
        (lambda: SceneConfig(min_objects=0), "min_objects"),
        (lambda: SceneConfig(min_objects=4, max_objects=2), "max_objects"),
        (lambda: SceneConfig(min_visible=0.0), "min_visible"),
    ],
)
def test_bad_arguments_name_the_field(call, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        call()
