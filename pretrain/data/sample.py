"""Decoding and validating one ``RawSample`` into a ``Sample``; whatever is wrong is skipped and counted.

A sample is skipped when it has no readable JSON object, no caption, or no decodable image. Problems
confined to one region (bad box, bad phrase, outside the image, zero area) or one caption entry drop just
that region or entry. Boxes are checked and clipped with ``loclip.encoder.boxes`` in the pixel frame of
the decoded image (after EXIF orientation, as ``LoclipProcessor`` expects them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from PIL import Image

from loclip.core.image_loading import (
    DEFAULT_MAX_PIXELS,
    RASTER_EXTENSIONS,
    ImageRefused,
    ImageTooLarge,
    open_raster,
    resolve_image_path,
    to_rgb,
)
from loclip.core.json_input import InputRefused, parse_json
from loclip.core.messages import shown
from loclip.encoder.boxes import EDGE_TOLERANCE, check_pixel_box
from loclip.shards import skips as S
from loclip.shards.skips import SkipCounter

from .readers import RawSample


class Region(NamedTuple):
    """A valid region: pixel xyxy ``box`` inside the image (clipped, positive area) and its ``phrase``."""

    box: tuple[float, float, float, float]
    phrase: str


@dataclass
class Sample:
    """One decoded, validated training sample; every caption string is stripped and non-blank."""

    key: str
    image: Image.Image  # RGB, display orientation
    caption: str
    long_captions: list[str]
    short_captions: list[str]
    regions: list[Region]


def decode_sample(
    raw: RawSample,
    counter: SkipCounter,
    box_tolerance: float = EDGE_TOLERANCE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Sample | None:
    """``raw`` → ``Sample``, or ``None`` after counting why it was skipped.

    JSON fields: ``caption`` (required), ``long_captions`` / ``short_captions`` (optional lists of strings;
    a single string is taken as a list of one), ``regions`` (optional ``[{"bbox": [x1, y1, x2, y2] pixels,
    "phrase": str}]``); JSONL lines also give ``image`` (a path inside the image root) and may give ``key``.
    An image over ``max_pixels`` (by its header) is skipped before it is decoded.
    """
    where = f"{raw.key} in {raw.source}"
    if "json" not in raw.files:
        return _skip(counter, S.SAMPLE_MISSING_JSON, where)
    try:
        record = parse_json(raw.files["json"], where)
    except InputRefused as e:  # not UTF-8, not JSON, or nested too deeply
        return _skip(counter, S.SAMPLE_BAD_JSON, str(e))
    if not isinstance(record, dict):
        return _skip(counter, S.SAMPLE_BAD_JSON, f"{where}: JSON is a {type(record).__name__}, not an object")
    caption = record.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        return _skip(counter, S.SAMPLE_MISSING_CAPTION, f"{where}: caption={shown(caption)}")
    key = record.get("key") if raw.image_root is not None and isinstance(record.get("key"), str) else raw.key
    image_bytes = _image_bytes(raw, record, counter, where)
    if image_bytes is None:
        return None
    try:  # decode now: a truncated or corrupt file fails here, not in the processor
        image = to_rgb(open_raster(image_bytes, key, max_pixels), key)
    except ImageTooLarge as e:
        return _skip(counter, S.SAMPLE_IMAGE_TOO_LARGE, f"{where}: {e}")
    except (ImageRefused, ValueError) as e:
        return _skip(counter, S.SAMPLE_BAD_IMAGE, f"{where}: {e}")
    return Sample(
        key=key,
        image=image,
        caption=caption.strip(),
        long_captions=_caption_list(record.get("long_captions"), counter, where),
        short_captions=_caption_list(record.get("short_captions"), counter, where),
        regions=_valid_regions(record.get("regions"), (image.height, image.width), box_tolerance, counter, where),
    )


def _skip(counter: SkipCounter, reason: str, detail: str) -> None:
    counter.add(reason, detail)
    return None


def _image_bytes(raw: RawSample, record: dict[str, Any], counter: SkipCounter, where: str) -> bytes | None:
    if raw.image_root is None:  # a shard member
        ext = next((e for e in RASTER_EXTENSIONS if e in raw.files), None)
        if ext is None:
            return _skip(counter, S.SAMPLE_MISSING_IMAGE, f"{where}: members {sorted(raw.files)}")
        return raw.files[ext]
    rel = record.get("image")
    if not isinstance(rel, str) or not rel:
        return _skip(counter, S.SAMPLE_MISSING_IMAGE, f"{where}: image={shown(rel)}")
    try:
        path = resolve_image_path(raw.image_root, rel, where)  # a regular file inside image_root, or nothing
    except ImageRefused as e:
        reason = S.SAMPLE_MISSING_IMAGE if e.reason == "image_missing" else S.SAMPLE_IMAGE_PATH
        return _skip(counter, reason, str(e))
    try:
        return path.read_bytes()
    except OSError as e:
        return _skip(counter, S.SAMPLE_MISSING_IMAGE, f"{where}: {e}")


def _caption_list(value: Any, counter: SkipCounter, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        counter.add(S.FIELD_BAD_CAPTION_LIST, f"{where}: {type(value).__name__}")
        return []
    out = []
    for entry in value:
        if isinstance(entry, str) and entry.strip():
            out.append(entry.strip())
        else:
            counter.add(S.FIELD_BAD_CAPTION_ENTRY, f"{where}: {shown(entry)}")
    return out


def _valid_regions(
    value: Any, size: tuple[int, int], tolerance: float, counter: SkipCounter, where: str
) -> list[Region]:
    """The valid entries of a ``regions`` field (see ``_check_region``); ``size`` is (height, width)."""
    if value is None:
        return []
    if not isinstance(value, list):
        counter.add(S.REGION_BAD_LIST, f"{where}: {type(value).__name__}")
        return []
    out = []
    for i, region in enumerate(value):
        checked = _check_region(region, size, tolerance)
        if isinstance(checked, Region):
            out.append(checked)
        else:
            counter.add(checked, f"{where}: regions[{i}] = {shown(region)}")
    return out


def _check_region(region: Any, size: tuple[int, int], tolerance: float) -> Region | str:
    """A ``Region`` if the box is 4 numbers in xyxy order within ``tolerance`` px of the image (it is then
    clipped to the image) with positive area and the phrase is a non-blank string; else the skip reason."""
    bbox = region.get("bbox") if isinstance(region, dict) else None
    phrase = region.get("phrase") if isinstance(region, dict) else None
    box = check_pixel_box(bbox, size, tolerance)
    if box in ("not_a_box", "inverted"):
        return S.REGION_BAD_BBOX
    if not isinstance(phrase, str) or not phrase.strip():
        return S.REGION_BAD_PHRASE
    if box == "outside":
        return S.REGION_OUTSIDE_IMAGE
    x1, y1, x2, y2 = box
    if (x2 - x1) * (y2 - y1) <= 0:
        return S.REGION_ZERO_AREA
    return Region(box, phrase.strip())
