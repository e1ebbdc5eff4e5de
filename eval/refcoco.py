"""RefCOCO-style reader: referring expressions (refs) → regions named by their sentences.

The expected JSON (the refs of a RefCOCO/RefCOCO+/RefCOCOg release joined with its instances, as one
JSON file; the original ``refs(*).p`` pickles are never read, as the project never unpickles):

    {"images":      [{"id": 1, "file_name": "a.jpg", "height": 480, "width": 640}, ...],
     "annotations": [{"id": 7, "image_id": 1, "bbox": [x, y, w, h]}, ...],           # COCO xywh pixels
     "refs":        [{"image_id": 1, "ann_id": 7, "split": "val",
                      "sentences": [{"sent": "the man on the left"}, "or a plain string", ...]}, ...]}

A ref may instead carry its own ``"bbox"`` (xywh) and omit ``ann_id``. Refs of the same annotation are
merged into one region with all their sentences. Each (region, sentence) pair is one grounding query;
region retrieval matches regions with sentences. Images missing from ``image_dir`` are skipped and counted.
"""

from __future__ import annotations

import os
from typing import Any

from loclip.core.messages import shown
from loclip.encoder.boxes import coco_to_xyxy

from .coco import check_ids, check_references, check_sizes, clip_to_image, is_id, load_json, require_keys
from .data import Dataset, Region, RegionImage, check_dir, collect_images, skip_counter


def _sentences(ref: dict[str, Any], where: str) -> list[str]:
    out = []
    for j, s in enumerate(ref.get("sentences") or []):
        text = s.get("sent", s.get("raw")) if isinstance(s, dict) else s
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"refs_json: {where}.sentences[{j}] must be a string or {{'sent': str}}, got {shown(s)}")
        out.append(text.strip())
    if not out:
        raise ValueError(f"refs_json: {where}.sentences is empty or missing")
    return out


def read_refs(
    path: str | os.PathLike, image_dir: str | os.PathLike, split: str | None = None, max_images: int | None = None
) -> Dataset[RegionImage]:
    """RefCOCO-style JSON (module docstring) → images with regions named by their referring sentences.

    ``split`` keeps only refs whose ``"split"`` equals it (e.g. ``"val"``, ``"testA"``); ``None`` keeps all.
    """
    data = load_json(path, "refs_json", ("images", "refs"))
    require_keys(
        data, "refs_json", {"images": ("id", "file_name"), "annotations": ("id", "bbox"), "refs": ("image_id",)}
    )
    check_ids(data, "refs_json", ("images", "annotations"))
    check_sizes(data, "refs_json")
    check_references(data, "refs_json", "refs", {"image_id": "images"})
    root = check_dir(image_dir, "image_dir")
    images = {img["id"]: img for img in data["images"]}
    anns = {ann["id"]: ann for ann in data.get("annotations", [])}
    # image id -> box key -> (pixel box, sentences); dicts keep first-seen order
    grouped: dict[Any, dict[Any, tuple[Any, list[str]]]] = {}
    for i, ref in enumerate(data["refs"]):
        if split is not None and ref.get("split") != split:
            continue
        where = f"refs[{i}]"
        if "bbox" in ref:
            key, xywh = ("ref", i), ref["bbox"]
        elif is_id(ref.get("ann_id")) and ref["ann_id"] in anns:
            key, xywh = ref["ann_id"], anns[ref["ann_id"]]["bbox"]
        else:
            raise ValueError(
                f"refs_json: {where}.ann_id = {shown(ref.get('ann_id'))} is not an annotation id "
                "(and the ref has no 'bbox' of its own)"
            )
        box = clip_to_image(coco_to_xyxy(xywh, f"{where} bbox"), images[ref["image_id"]])
        entry = grouped.setdefault(ref["image_id"], {}).setdefault(key, (box, []))
        entry[1].extend(_sentences(ref, where))
    if split is not None and not grouped:
        found = sorted({str(r.get("split")) for r in data["refs"]})
        raise ValueError(
            f"refs_split: no refs with split {shown(split)} in {str(path)!r} (splits there: {shown(found)})"
        )

    def regions(img: dict[str, Any]) -> tuple[Region, ...]:
        return tuple(Region(tuple(box.tolist()), phrases=tuple(s)) for box, s in grouped[img["id"]].values())

    skips = skip_counter()
    items = collect_images((images[i] for i in grouped), root, regions, RegionImage, skips, max_images)
    name = f"refs:{os.path.basename(path)}" + (f":{split}" if split else "")
    return Dataset(name, items, skipped=skips.as_dict())
