"""COCO readers (pycocotools): instances → region classification, captions → image–text retrieval.

Instances: every non-crowd box at least ``min_box_size`` pixels on both sides, labelled with its
category; classes are the file's categories in ascending id order. Skipped and counted:
crowd boxes (``iscrowd=1``: one box around many objects, no single class instance), boxes thinner than
``min_box_size`` (default 8 px: well under one ViT patch of a 640 px COCO image at 224 px input, too
small to embed meaningfully), and images missing from ``image_dir``. Boxes are clipped to the image
size the file states (COCO boxes overshoot the border by a fraction of a pixel now and then).

Clear errors (``ValueError`` naming ``list[i].field`` and the value), since each would misread the file without
a word: an id that is not an integer or a string (``true`` would be taken for 1), an id repeated in its list
(two images or two categories would merge), a reference to no id of the file, and a ``file_name`` that leads
outside ``image_dir`` or names no regular file (``/etc/passwd.png``).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import torch

from loclip.core.json_input import read_json
from loclip.core.messages import shown
from loclip.encoder.boxes import MAX_SIDE, clip_to_size, coco_to_xyxy

from .data import (
    CaptionedImage,
    Dataset,
    MultiLabelImage,
    Region,
    RegionImage,
    check_dir,
    collect_images,
    skip_counter,
)

DEFAULT_MIN_BOX_SIZE = 8.0  # pixels, per side
_ID_OF = {"images": "an image id", "categories": "a category id", "annotations": "an annotation id"}


def load_json(path: str | os.PathLike, field_name: str, required: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object with the ``required`` top-level lists, or ``ValueError`` naming the field and key."""
    data = read_json(path, field_name)
    if not isinstance(data, dict):
        raise ValueError(f"{field_name}: {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    for key in required:
        if not isinstance(data.get(key), list):
            raise ValueError(f"{field_name}: {str(path)!r} needs a {key!r} list")
    return data


def require_keys(data: dict[str, Any], field_name: str, required: dict[str, tuple[str, ...]]) -> None:
    """``ValueError`` naming ``list[i].key`` for the first entry of a list missing a key it needs."""
    for list_name, keys in required.items():
        for i, entry in enumerate(data.get(list_name, [])):
            missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise ValueError(f"{field_name}: {list_name}[{i}] lacks {missing[0]!r} (got {shown(entry)})")


def is_id(value: Any) -> bool:
    """An id is an integer or a string; ``true`` is not (Python would take it for 1), nor is ``1.0``."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def check_ids(data: dict[str, Any], field_name: str, lists: tuple[str, ...]) -> None:
    """Every ``id`` of the ``lists`` is an id (``is_id``) and unique in its list, or ``ValueError`` naming
    ``list[i].id``: a repeated image id would drop one image and score the other with both sets of
    annotations, a repeated category id would merge two classes."""
    for list_name in lists:
        first: dict[Any, int] = {}
        for i, entry in enumerate(data.get(list_name, [])):
            value = entry["id"]
            if not is_id(value):
                raise ValueError(f"{field_name}: {list_name}[{i}].id = {shown(value)} is not an integer or a string")
            if value in first:
                raise ValueError(
                    f"{field_name}: {list_name}[{i}].id = {shown(value)} repeats "
                    f"{list_name}[{first[value]}].id; ids must be unique"
                )
            first[value] = i


def check_references(data: dict[str, Any], field_name: str, list_name: str, fields: dict[str, str]) -> None:
    """Every ``data[list_name][i][key]`` is the id of an entry of ``data[fields[key]]`` (``check_ids`` first),
    or ``ValueError`` naming ``list_name[i].key`` and the value."""
    ids = {target: {entry["id"] for entry in data.get(target, [])} for target in fields.values()}
    for i, entry in enumerate(data.get(list_name, [])):
        for key, target in fields.items():
            value = entry[key]
            if not is_id(value) or value not in ids[target]:
                raise ValueError(f"{field_name}: {list_name}[{i}].{key} = {shown(value)} is not {_ID_OF[target]}")


def coco_index(data: dict[str, Any]) -> Any:
    """A pycocotools ``COCO`` index over already-loaded data (its progress prints are swallowed).

    Imported here, not at the top: ``loclip.eval`` (and pretraining's synthetic eval) must import without
    the ``eval`` extra; only the COCO readers need it.
    """
    try:
        from pycocotools.coco import COCO
    except ImportError as e:
        raise ImportError("the COCO readers need pycocotools: pip install 'loclip[eval]'") from e
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def check_sizes(data: dict[str, Any], field_name: str) -> None:
    """Every stated ``images[j].height`` / ``.width`` is a positive whole number (``480`` or ``480.0``; absent or
    ``null``: not stated), or ``ValueError`` naming ``images[j].height`` and the value: boxes are clipped to them."""
    for j, img in enumerate(data.get("images", [])):
        for key in ("height", "width"):
            value = img.get(key)
            if value is None:
                continue
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not whole or not 0 < value <= MAX_SIDE:
                raise ValueError(
                    f"{field_name}: images[{j}].{key} = {shown(value)} is not a positive whole number of pixels"
                )


def clip_to_image(box: torch.Tensor, img: dict[str, Any]) -> torch.Tensor:
    """Pixel xyxy ``[4]`` clipped to the image's stated ``height``/``width`` (``check_sizes``; unchanged when
    either is not stated)."""
    if img.get("height") is not None and img.get("width") is not None:
        return clip_to_size(box, (int(img["height"]), int(img["width"])))
    return box


def read_coco_instances(
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    min_box_size: float = DEFAULT_MIN_BOX_SIZE,
    max_images: int | None = None,
) -> Dataset[RegionImage]:
    """COCO instances JSON + image folder → images with labelled pixel-xyxy regions (see module docstring)."""
    data = load_json(ann_file, "instances_json", ("images", "annotations", "categories"))
    require_keys(
        data,
        "instances_json",
        {
            "images": ("id", "file_name"),
            "categories": ("id", "name"),
            "annotations": ("id", "image_id", "category_id", "bbox"),
        },
    )
    check_ids(data, "instances_json", ("images", "annotations", "categories"))
    check_sizes(data, "instances_json")
    check_references(data, "instances_json", "annotations", {"image_id": "images", "category_id": "categories"})
    root = check_dir(image_dir, "image_dir")
    coco = coco_index(data)
    cat_ids = sorted(coco.cats, key=_id_order)
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    skips = skip_counter()

    def regions(img: dict[str, Any]) -> tuple[Region, ...]:
        out = []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            if ann.get("iscrowd", 0):
                skips.add("crowd_box", f"annotation {ann['id']}")
                continue
            box = clip_to_image(coco_to_xyxy(ann["bbox"], f"annotation {ann['id']} bbox"), img)
            if min(box[2] - box[0], box[3] - box[1]) < min_box_size:
                skips.add("tiny_box", f"annotation {ann['id']} bbox {ann['bbox']}")
                continue
            out.append(Region(tuple(box.tolist()), label_of[ann["category_id"]]))
        return tuple(out)

    items = collect_images(
        coco.loadImgs(sorted(coco.imgs, key=_id_order)), root, regions, RegionImage, skips, max_images
    )
    names = tuple(coco.cats[c]["name"] for c in cat_ids)
    return Dataset(f"coco-instances:{os.path.basename(ann_file)}", items, names, skips.as_dict())


def read_coco_captions(
    ann_file: str | os.PathLike, image_dir: str | os.PathLike, max_images: int | None = None
) -> Dataset[CaptionedImage]:
    """COCO captions JSON + image folder → one item per image with all its captions (ids ascending)."""
    data = load_json(ann_file, "captions_json", ("images", "annotations"))
    require_keys(data, "captions_json", {"images": ("id", "file_name"), "annotations": ("id", "image_id", "caption")})
    check_ids(data, "captions_json", ("images", "annotations"))
    check_references(data, "captions_json", "annotations", {"image_id": "images"})
    root = check_dir(image_dir, "image_dir")
    coco = coco_index(data)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann["caption"], str) or not ann["caption"].strip():
            raise ValueError(
                f"captions_json: annotations[{i}].caption must be a non-empty string, got {shown(ann['caption'])}"
            )
    skips = skip_counter()

    def captions(img: dict[str, Any]) -> tuple[str, ...]:
        anns = sorted(coco.imgToAnns[img["id"]], key=lambda a: _id_order(a["id"]))
        found = tuple(a["caption"].strip() for a in anns)
        if not found:
            skips.add("image_without_caption", f"image {img['id']}")
        return found

    items = collect_images(
        coco.loadImgs(sorted(coco.imgs, key=_id_order)), root, captions, CaptionedImage, skips, max_images
    )
    return Dataset(f"coco-captions:{os.path.basename(ann_file)}", items, skipped=skips.as_dict())


def read_coco_multilabel(
    ann_file: str | os.PathLike, image_dir: str | os.PathLike, max_images: int | None = None
) -> Dataset[MultiLabelImage]:
    """COCO instances JSON + image folder → each image with the categories of its non-crowd annotations.

    Classes are the file's categories in ascending id order (as ``read_coco_instances``). Skipped and counted:
    crowd annotations (``crowd_box``), images left with no label (``image_without_label``: nothing to rank them
    by) and images missing from ``image_dir``. Boxes are not read, so no pycocotools is needed.
    """
    field_name = "instances_json"
    data = load_json(ann_file, field_name, ("images", "annotations", "categories"))
    require_keys(
        data,
        field_name,
        {"images": ("id", "file_name"), "categories": ("id", "name"), "annotations": ("id", "image_id", "category_id")},
    )
    check_ids(data, field_name, ("images", "annotations", "categories"))
    check_references(data, field_name, "annotations", {"image_id": "images", "category_id": "categories"})
    root = check_dir(image_dir, "image_dir")
    name_of = {c["id"]: c["name"] for c in data["categories"]}
    cat_ids = sorted(name_of, key=_id_order)
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    images = {img["id"]: img for img in data["images"]}
    anns: dict[Any, list[dict[str, Any]]] = {i: [] for i in images}
    for ann in data["annotations"]:
        anns[ann["image_id"]].append(ann)
    skips = skip_counter()

    def labels(img: dict[str, Any]) -> tuple[int, ...]:  # skips are counted for the images read only
        found = set()
        for ann in anns[img["id"]]:
            if ann.get("iscrowd", 0):
                skips.add("crowd_box", f"annotation {ann['id']}")
            else:
                found.add(label_of[ann["category_id"]])
        if not found:
            skips.add("image_without_label", f"image {img['id']}")
        return tuple(sorted(found))

    items = collect_images(
        [images[i] for i in sorted(images, key=_id_order)], root, labels, MultiLabelImage, skips, max_images
    )
    names = tuple(name_of[cid] for cid in cat_ids)
    return Dataset(f"coco-multilabel:{os.path.basename(ann_file)}", items, names, skips.as_dict())


def _id_order(value: int | str) -> tuple[bool, int | str]:
    """Ids in ascending order, integers before strings (a file may mix them: ``sorted`` alone would fail)."""
    return isinstance(value, str), value
