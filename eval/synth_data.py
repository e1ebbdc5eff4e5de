"""The synthetic world (``pretrain.synth.read_split``) as evaluation datasets.

- captions: each scene's short caption, or its long caption (one sentence per object plus relations);
- regions: every object box, labelled with its phrase among ``ALL_PHRASES`` (sizes × colours × shapes,
  the world's whole closed vocabulary, so classification is over every phrase it can say);
- grounding: the regions whose phrase names one object alone in its scene (others are ambiguous);
- detection: every object box, labelled by the phrase of a vocabulary that names it ("red circle");
- multi-label: each scene's set of phrases (or colour-shape pairs, colours, or shapes), scored zero-shot from
  the image embedding;
- segmentation: each scene's label map as classes (background + phrases, colours or shapes).
"""

from __future__ import annotations

import os
from itertools import islice, product
from typing import Literal, get_args

import numpy as np

from loclip.encoder.choices import check_choice
from loclip.synth import BACKGROUNDS, COLOURS, SHAPES, SIZES, SceneRecord, label_map, read_split
from loclip.synth.language import BACKGROUND_SENTENCE, OBJECT_SENTENCE, POSITIONS

from .data import CaptionedImage, Dataset, MultiLabelImage, PromptGroups, Region, RegionImage, SegmentedImage

ALL_PHRASES: tuple[str, ...] = tuple(f"{s} {c} {h}" for s, c, h in product(SIZES, COLOURS, SHAPES))
_LABEL = {p: i for i, p in enumerate(ALL_PHRASES)}


def read_scenes(synth_dir: str | os.PathLike, split: str, max_scenes: int | None = None) -> list[SceneRecord]:
    """The split's first ``max_scenes`` scenes (all when ``None``); ``ValueError`` if there are none, and (from
    ``loclip.synth.read_split``) naming the shard and the scene when the split is damaged: the world is a fixed
    benchmark, so a scene is never skipped, which would change the figures without a word."""
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


# Zero-shot prompts in the world's own words: a class is every sentence the long captions can say about an
# object of that class (positions averaged as a template ensemble); the background is one group per colour.
LabelSet = Literal["phrase", "colour_shape", "colour", "shape"]
LABEL_SETS: tuple[str, ...] = get_args(LabelSet)


def _object_classes(labels: LabelSet) -> tuple[str, ...]:
    check_choice("labels", labels, LABEL_SETS)
    colour_shape = tuple(f"{c} {h}" for c, h in product(COLOURS, SHAPES))
    return {"phrase": ALL_PHRASES, "colour_shape": colour_shape, "colour": tuple(COLOURS), "shape": tuple(SHAPES)}[
        labels
    ]


def _object_prompts(name: str, labels: LabelSet) -> tuple[str, ...]:
    """Every object sentence about a phrase of class ``name`` (all 9 positions)."""
    phrases = [p for p in ALL_PHRASES if _class_of(dict(zip(("size", "colour", "shape"), p.split())), labels) == name]
    return tuple(OBJECT_SENTENCE.format(phrase=p, position=pos) for p in phrases for row in POSITIONS for pos in row)


def _class_of(obj: dict, labels: LabelSet) -> str:
    if labels == "phrase":
        return f"{obj['size']} {obj['colour']} {obj['shape']}"
    return f"{obj['colour']} {obj['shape']}" if labels == "colour_shape" else obj[labels]


def world_prompts(labels: LabelSet, background: bool) -> tuple[tuple[str, ...], PromptGroups]:
    """Class names and prompt groups (``Dataset.class_prompts``) of a label set, with ``"background"`` first
    when ``background`` (one group per background colour: ``"The background is teal."``)."""
    names = _object_classes(labels)
    groups = tuple((_object_prompts(n, labels),) for n in names)
    if not background:
        return names, groups
    back = tuple((BACKGROUND_SENTENCE.format(background=b),) for b in BACKGROUNDS)
    return ("background", *names), (back, *groups)


def synthetic_multilabel(records: list[SceneRecord], labels: LabelSet = "phrase") -> Dataset[MultiLabelImage]:
    """Each scene with the classes of its objects (``labels``: phrases, colours or shapes)."""
    names, prompts = world_prompts(labels, background=False)
    index = {n: i for i, n in enumerate(names)}
    items = [
        MultiLabelImage(r.image, tuple(sorted({index[_class_of(o, labels)] for o in r.meta["objects"]})))
        for r in records
    ]
    return Dataset(f"synthetic-multilabel-{labels}", items, names, class_prompts=prompts)


def synthetic_detection(records: list[SceneRecord], labels: LabelSet = "colour_shape") -> Dataset[RegionImage]:
    """Each scene with every object box labelled by its class of ``labels`` (the phrase that names it: "red
    circle" for ``colour_shape``), so a query's ground truth is every object it names. Classes are queried by
    their bare names."""
    names = _object_classes(labels)
    index = {n: i for i, n in enumerate(names)}
    items = []
    for r in records:
        regions = []
        for g in r.meta["regions"]:
            name = _class_of(dict(zip(("size", "colour", "shape"), _region(g).phrases[0].split())), labels)
            regions.append(Region(tuple(float(v) for v in g["bbox"]), index[name], (name,)))
        items.append(RegionImage(r.image, tuple(regions)))
    return Dataset(f"synthetic-detection-{labels}", items, names)


def synthetic_segmentation(records: list[SceneRecord], labels: LabelSet = "phrase") -> Dataset[SegmentedImage]:
    """Each scene with its per-pixel class map: 0 background, else the class of the object drawn there."""
    names, prompts = world_prompts(labels, background=True)
    index = {n: i for i, n in enumerate(names)}
    items = []
    for r in records:
        lut = np.array([0] + [index[_class_of(o, labels)] for o in r.meta["objects"]], dtype=np.int64)
        items.append(SegmentedImage(r.image, lut[label_map(r)]))
    return Dataset(f"synthetic-segmentation-{labels}", items, names, class_prompts=prompts)
