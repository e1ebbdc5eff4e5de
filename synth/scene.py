"""``generate_scene``: one scene — pixels, objects with tight boxes, and its text — from a seed.

Scene ``index`` of ``split`` under ``seed`` is drawn from ``numpy.random.default_rng([seed,
split_id, index])``: any scene can be regenerated alone, and splits draw from disjoint streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .background import make_background
from .config import SceneConfig, check_int
from .language import SceneText, describe_scene
from .layout import place_masks, visible_box
from .objects import SceneObject
from .shapes import shape_mask
from .world import (
    ALL_PAIRS,
    BACKGROUNDS,
    COLOURS,
    NOVEL_PAIR_LIST,
    NOVEL_PAIRS,
    SEEN_PAIRS,
    SIZES,
    SPLIT_IDS,
    check_split,
)

_BACKGROUND_NAMES = tuple(BACKGROUNDS)
_SIZE_NAMES = tuple(SIZES)
_MAX_LAYOUTS = 1000  # novel split: re-layouts until a held-out object survives placement (almost always 1)


@dataclass(frozen=True, eq=False)
class Scene:
    """A generated scene.

    ``image``: uint8 ``[H, W, 3]``. ``labels``: uint8 ``[H, W]``, 0 for background and ``k + 1``
    where ``objects[k]`` is visible. ``objects`` in drawing order (later ones are drawn on top).
    """

    split: str
    index: int
    seed: int
    image: np.ndarray
    labels: np.ndarray
    background: str
    objects: tuple[SceneObject, ...]
    text: SceneText

    @property
    def key(self) -> str:
        """Unique name within an output directory, e.g. ``"train-00000042"`` (no dots: a webdataset key)."""
        return f"{self.split}-{self.index:08d}"

    @property
    def size(self) -> int:
        """Side of the square image in pixels."""
        return int(self.image.shape[0])


def _sample_pairs(rng: np.random.Generator, split: str, count: int) -> list[tuple[str, str]]:
    """``count`` colour–shape pairs: seen pairs only, except the novel split, where any pair may
    appear and one random object is forced to be a held-out pair."""
    if split != "novel":
        return [SEEN_PAIRS[i] for i in rng.integers(len(SEEN_PAIRS), size=count)]
    pairs = [ALL_PAIRS[i] for i in rng.integers(len(ALL_PAIRS), size=count)]
    pairs[int(rng.integers(count))] = NOVEL_PAIR_LIST[int(rng.integers(len(NOVEL_PAIR_LIST)))]
    return pairs


def generate_scene(split: str, index: int, seed: int, config: SceneConfig | None = None) -> Scene:
    """Draw scene ``index`` of ``split`` (``train``/``val``/``test``/``novel``) for ``seed``."""
    check_split(split)
    check_int("index", index, 0)
    check_int("seed", seed, 0)
    config = config or SceneConfig()
    size = config.image_size
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])

    background = _BACKGROUND_NAMES[int(rng.integers(len(_BACKGROUND_NAMES)))]
    image = make_background(rng, BACKGROUNDS[background], size)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    pairs = _sample_pairs(rng, split, count)
    size_names = [_SIZE_NAMES[i] for i in rng.integers(len(_SIZE_NAMES), size=count)]
    bands = [SIZES[name] for name in size_names]
    sides = [max(3, round(size * (lo + f * (hi - lo)))) for f, (lo, hi) in zip(rng.uniform(size=count), bands)]
    masks = [shape_mask(shape, side) for (_, shape), side in zip(pairs, sides)]

    for _ in range(_MAX_LAYOUTS):
        labels, origins = place_masks(rng, masks, size, config.min_visible, config.placement_tries)
        if split != "novel" or any(o is not None and pairs[k] in NOVEL_PAIRS for k, o in enumerate(origins)):
            break
    else:  # pragma: no cover - needs a config that leaves no room at all
        raise RuntimeError(f"could not place a held-out object in novel scene {index} with {config}")

    placed = [(k, o) for k, o in enumerate(origins) if o is not None]
    if len(placed) < count:  # renumber labels so that label k + 1 is objects[k] again
        remap = np.zeros(count + 1, dtype=np.uint8)
        remap[[k + 1 for k, _ in placed]] = np.arange(1, len(placed) + 1, dtype=np.uint8)
        labels = remap[labels]
    objects = tuple(
        SceneObject(
            shape=pairs[k][1],
            colour=pairs[k][0],
            size=size_names[k],
            box=visible_box(labels, i + 1, origin, sides[k]),
        )
        for i, (k, origin) in enumerate(placed)
    )
    palette = np.array([(0, 0, 0)] + [COLOURS[o.colour] for o in objects], dtype=np.uint8)
    drawn = labels > 0
    image[drawn] = palette[labels[drawn]]
    text = describe_scene(objects, background, size, rng)
    return Scene(split, index, seed, image, labels, background, objects, text)
