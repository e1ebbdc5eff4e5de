"""The synthetic world (``pretrain.synth.read_split``) as evaluation datasets.

- captions: each scene's short caption, or its long caption (one sentence per object plus relations);
- regions: every object box, labelled with its phrase among ``ALL_PHRASES`` (sizes × colours × shapes,
  the world's whole closed vocabulary, so classification is over every phrase it can say);
- grounding: the regions whose phrase names one object alone in its scene (others are ambiguous).
"""

from __future__ import annotations

import os
from itertools import islice, product

from loclip.synth import COLOURS, SHAPES, SIZES, SceneRecord, read_split

from .data import CaptionedImage, Dataset, Region, RegionImage

ALL_PHRASES: tuple[str, ...] = tuple(f"{s} {c} {h}" for s, c, h in product(SIZES, COLOURS, SHAPES))
_LABEL = {p: i for i, p in enumerate(ALL_PHRASES)}


def read_scenes(synth_dir: str | os.PathLike, split: str, max_scenes: int | None = None) -> list[SceneRecord]:
    """The split's first ``max_scenes`` scenes (all when ``None``); ``ValueError`` if there are none."""
    records = list(islice(read_split(synth_dir, split), max_scenes))
    if not records:
        raise ValueError(f"synth_dir: split {split!r} of {str(synth_dir)!r} holds no scenes")
    return records


def synthetic_captions(records: list[SceneRecord], long: bool = False) -> Dataset[CaptionedImage]:
    """One caption per scene: the short ``caption`` or the first of ``long_captions``."""
    items = [CaptionedImage(r.image, (r.meta["long_captions"][0] if long else r.meta["caption"],)) for r in records]
    return Dataset("synthetic-long" if long else "synthetic", items)


def _region(region: dict) -> Region:
    phrase = region["phrase"]
    if phrase not in _LABEL:
        raise ValueError(f"synthetic region phrase {phrase!r} is not one of the world's phrases (size colour shape)")
    return Region(tuple(float(v) for v in region["bbox"]), _LABEL[phrase], (phrase,))


def synthetic_regions(records: list[SceneRecord], unique_only: bool = False) -> Dataset[RegionImage]:
    """Every object box with its phrase label; ``unique_only`` keeps phrases naming one object in the scene
    (the grounding set). Scenes left with no region are dropped."""
    items = []
    for r in records:
        phrases = [g["phrase"] for g in r.meta["regions"]]
        keep = tuple(_region(g) for g in r.meta["regions"] if not unique_only or phrases.count(g["phrase"]) == 1)
        if keep:
            items.append(RegionImage(r.image, keep))
    return Dataset("synthetic-grounding" if unique_only else "synthetic-regions", items, ALL_PHRASES)
