"""Segmentation masks: per-pixel class maps from PNG files (ADE20K / COCO-Stuff style) or arrays.

A mask PNG holds one integer per pixel (mode ``L``, ``P`` — palette indices, as in Pascal VOC — or 16-bit
``I;16``/``I``), of the same size as its image. ``read_masks`` pairs images with masks by file stem and maps
raw values to class indices with a lookup table built from the class list:

- a text file, one class name per line: line ``i`` (from 0) is mask value ``i`` (so a blank line is an
  error, not a line to skip);
- a JSON object ``{"value": "name", ...}`` for sparse ids (COCO-Stuff's 0–181 with gaps): keys are plain
  decimal values 0–65535, names non-blank strings; classes are numbered in value order;
- ``reduce_zero_label`` (ADE20K): value 0 is "unlabelled" and value ``v`` is line ``v - 1``.

``ignore_index`` (255 by default) marks unlabelled pixels. Any other value with no class is an error naming
the file and the value: a mask that does not match its class list is not scored silently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from loclip.core.image_loading import ImageRefused, ImageTooLarge, open_raster
from loclip.core.json_input import read_json, read_text
from loclip.core.messages import shown

from .data import Dataset, SegmentedImage, check_dir, skip_counter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
UNMAPPED = -1  # lookup-table entry for a raw value that has no class
MAX_MASK_VALUE = 65535  # a 16-bit PNG's largest value
_MASK_VALUE = re.compile(r"0|[1-9][0-9]{0,4}")  # ASCII digits only, no sign, space or leading zero


@dataclass(frozen=True)
class MaskFile:
    """A mask PNG and the lookup table from its raw values to class indices (``-1``: no class; the ignore
    value maps to itself)."""

    path: Path
    lut: np.ndarray


def read_class_list(path: str | os.PathLike, reduce_zero_label: bool = False) -> tuple[tuple[str, ...], dict[int, int]]:
    """Class names and ``{raw mask value: class index}`` from a text or JSON class list (module docstring).

    Anything that would move a class onto another value, or invent one, is a ``ValueError`` naming the file and
    the line or key: a blank line before the last name (blank lines at the end are ignored), a JSON key that is
    not a plain decimal ``0``..``65535`` (``" 1"`` or ``"01"`` beside ``"1"`` would give one value two classes),
    a key given twice, a name that is not a non-blank string (``null``, ``5``). Names are stripped; a UTF-8
    byte-order mark is read past.
    """
    where = f"seg_classes {str(path)!r}"
    if Path(path).suffix.lower() == ".json":
        table = read_json(path, "seg_classes", object_pairs_hook=lambda pairs: _unique_keys(pairs, where))
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a JSON object {{mask value: name}}, got {type(table).__name__}")
        pairs = sorted(_json_class(key, name, where) for key, name in table.items())
    else:
        lines = [line.strip() for line in read_text(path, "seg_classes").splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        if "" in lines:
            raise ValueError(
                f"{where}: line {lines.index('') + 1} is blank; line i names mask value i, so every "
                "later class would shift: name the class or remove the line"
            )
        pairs = [(i + int(reduce_zero_label), name) for i, name in enumerate(lines)]
    if not pairs:
        raise ValueError(f"{where} names no class")
    return tuple(name for _, name in pairs), {value: i for i, (value, _) in enumerate(pairs)}


def _unique_keys(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    """``json.loads``'s object hook: a key given twice is an error (the JSON module keeps the last silently)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"{where}: key {shown(key)} is given twice")
        seen.add(key)
    return dict(pairs)


def _json_class(key: str, name: Any, where: str) -> tuple[int, str]:
    """One ``"value": "name"`` entry of a JSON class list, checked → ``(value, stripped name)``."""
    if not _MASK_VALUE.fullmatch(key) or int(key) > MAX_MASK_VALUE:
        raise ValueError(
            f"{where}: key {shown(key)} is not a mask value: expected a plain decimal integer "
            f'0..{MAX_MASK_VALUE} ("1", not " 1" or "01")'
        )
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: the name of value {key} must be a non-empty string, got {shown(name)}")
    return int(key), name.strip()


def lookup_table(values: dict[int, int], ignore_index: int | None, size: int = 65536) -> np.ndarray:
    """``values`` as a dense table over raw values ``0..size-1`` (``UNMAPPED`` elsewhere, ignore → itself)."""
    lut = np.full(size, UNMAPPED, dtype=np.int64)
    for value, index in values.items():
        if value < size:
            lut[value] = index
    if ignore_index is not None and 0 <= ignore_index < size:
        if ignore_index in values:
            raise ValueError(f"seg_ignore_index {ignore_index} is also a class value in seg_classes")
        lut[ignore_index] = ignore_index
    return lut


def read_masks(
    image_dir: str | os.PathLike,
    mask_dir: str | os.PathLike,
    classes: str | os.PathLike,
    ignore_index: int | None = 255,
    reduce_zero_label: bool = False,
    max_images: int | None = None,
) -> Dataset[SegmentedImage]:
    """Images of ``image_dir`` paired by stem with ``mask_dir/<stem>.png`` (sorted by name), classes from
    ``classes``. Images without a mask are skipped and counted (``missing_mask``)."""
    images, masks = check_dir(image_dir, "seg_image_dir"), check_dir(mask_dir, "seg_mask_dir")
    names, values = read_class_list(classes, reduce_zero_label)
    # the ignore value also marks pixels after the lookup (class-index space): it must not be a class index
    if ignore_index is not None and 0 <= ignore_index < len(names):
        raise ValueError(
            f"seg_ignore_index {ignore_index} is also a class index (0..{len(names) - 1} for "
            f"{len(names)} classes): use a value >= {len(names)}, e.g. 255"
        )
    lut = lookup_table(values, ignore_index)
    if reduce_zero_label:  # ADE20K: 0 is "other", not scored
        if ignore_index is None:
            raise ValueError("seg_reduce_zero_label needs an ignore index for value 0")
        if 0 in values:  # a JSON list naming value 0 would lose that class silently
            raise ValueError(f"seg_reduce_zero_label: value 0 is a class of seg_classes {str(classes)!r}")
        lut[0] = ignore_index
    skips = skip_counter()
    items: list[SegmentedImage] = []
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        if max_images is not None and len(items) >= max_images:
            break
        mask = masks / f"{path.stem}.png"
        if not mask.is_file():
            skips.add("missing_mask", str(mask))
            continue
        items.append(SegmentedImage(path, MaskFile(mask, lut)))
    return Dataset(f"segmentation:{Path(mask_dir).name}", items, names, skips.as_dict(), ignore_index=ignore_index)


def load_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A ``SegmentedImage.mask`` (array or ``MaskFile``) as int64 class indices ``[H, W]`` of ``size``
    (height, width); ``ValueError`` naming the file when its size, mode or values do not fit."""
    if isinstance(mask, MaskFile):
        where = f"mask {str(mask.path)!r}"
        height, width = size
        try:  # no more pixels than its image: a larger mask is refused from its header, never decoded
            image = open_raster(mask.path, str(mask.path), max_pixels=height * width)
        except ImageTooLarge as e:
            if e.size is None:
                raise ValueError(f"{where} cannot be read: {e}") from e
            raise ValueError(
                f"{where} is {e.size[0]}x{e.size[1]} pixels but its image is {width}x{height} pixels "
                "(from its header, not decoded)"
            ) from None
        except ImageRefused as e:
            raise ValueError(f"{where} cannot be read: {e}") from e
        if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise ValueError(f"{where} is mode {image.mode}: expected one integer per pixel (L, P or 16-bit)")
        raw = np.asarray(image, dtype=np.int64)
        outside = (raw < 0) | (raw >= len(mask.lut))
        if outside.any():
            raise ValueError(f"{where} holds value {int(raw[outside][0])}, beyond the class table")
        array = mask.lut[raw]
        if (array == UNMAPPED).any():
            value = int(raw[array == UNMAPPED][0])
            raise ValueError(
                f"{where} holds value {value}, which is neither a class of seg_classes nor the ignore index"
            )
    else:
        where, array = "mask array", np.asarray(mask, dtype=np.int64)
    if array.shape != tuple(size):
        shape = f"{array.shape[1]}x{array.shape[0]} pixels" if array.ndim == 2 else f"of shape {array.shape}"
        raise ValueError(f"{where} is {shape} but its image is {size[1]}x{size[0]} pixels")
    return array


def mask_image(array: np.ndarray) -> Image.Image:
    """A class map ``[H, W]`` (values 0–255) as an ``L`` PNG-ready image (for writing test and toy masks)."""
    return Image.fromarray(np.asarray(array, dtype=np.uint8))
