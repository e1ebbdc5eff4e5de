"""Writing labels back: the merged JSON of one sample, and one output shard written atomically.

What happens to a sample's existing fields (every field not named below is copied unchanged):

- ``caption``: kept when present and non-blank; otherwise the generated short caption (or, if that is empty,
  the long one) becomes the caption.
- ``short_captions``: the generated short caption is appended when an existing caption was kept (and it is
  new); ``long_captions``: the generated long caption is appended when new. Existing entries stay first.
- ``regions`` (``regions_mode``): ``"add"`` (default) keeps the existing regions and appends each generated
  one whose box overlaps no existing box by IoU ≥ ``dedupe_iou`` (two boxes of one object with different
  phrases would be each other's negatives in the CLOC loss); ``"fill"`` keeps existing regions and labels
  only samples that have none; ``"replace"`` writes the generated regions only.
  Generated regions are ``{"bbox": [x1, y1, x2, y2] (pixels, 2 decimals), "phrase", "score", "source": "vesl"}``;
  the pretraining reader uses ``bbox`` and ``phrase`` and ignores the rest.
- ``vesl``: ``{"queries": [...]}``, the phrases the detector was asked for.

Shards are written with ``loclip.shards.write.ShardWriter`` (fixed member headers, a temporary name renamed
into place when whole).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch

from loclip.encoder import boxes as B

from .stages import Captions, Detection

RegionsMode = Literal["add", "fill", "replace"]
REGIONS_MODES: tuple[str, ...] = get_args(RegionsMode)
SOURCE_TAG = "vesl"


def _existing_boxes(regions: list[Any]) -> torch.Tensor:
    """Pixel boxes ``[N, 4]`` of the well-formed existing regions (others are kept but not compared)."""
    rows = [
        r["bbox"]
        for r in regions
        if isinstance(r, dict)
        and isinstance(r.get("bbox"), list)
        and len(r["bbox"]) == 4
        and all(isinstance(v, (int, float)) for v in r["bbox"])
    ]
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


def _region(det: Detection) -> dict[str, Any]:
    return {
        "bbox": [round(float(v), 2) for v in det.box],
        "phrase": det.phrase,
        "score": round(float(det.score), 4),
        "source": SOURCE_TAG,
    }


def merge_record(
    record: dict[str, Any],
    captions: Captions | None,
    queries: list[str],
    detections: list[Detection],
    regions_mode: RegionsMode = "add",
    dedupe_iou: float = 0.7,
) -> dict[str, Any]:
    """The sample's new JSON (see the module docstring); ``record`` is not modified."""
    if regions_mode not in REGIONS_MODES:
        raise ValueError(f"regions_mode must be one of {REGIONS_MODES}, got {regions_mode!r}")
    out = dict(record)
    if captions is not None:
        caption = record.get("caption")
        has_caption = isinstance(caption, str) and bool(caption.strip())
        if not has_caption and (captions.short or captions.long):
            out["caption"] = captions.short or captions.long
        elif has_caption and captions.short and captions.short != caption:
            out["short_captions"] = _append(record.get("short_captions"), captions.short)
        if captions.long:
            out["long_captions"] = _append(record.get("long_captions"), captions.long)
    existing = record.get("regions") if isinstance(record.get("regions"), list) else []
    generated = [_region(d) for d in detections]
    if regions_mode == "replace":
        out["regions"] = generated
    elif regions_mode == "fill":
        out["regions"] = list(existing) if existing else generated
    else:
        old = _existing_boxes(existing)
        if len(old) and generated:
            new = torch.tensor([g["bbox"] for g in generated], dtype=torch.float64)
            overlap = B.box_iou(new[:, None], old[None]).amax(dim=1) >= dedupe_iou  # [G]
            generated = [g for g, dup in zip(generated, overlap.tolist()) if not dup]
        out["regions"] = list(existing) + generated
    out[SOURCE_TAG] = {"queries": list(queries)}
    return out


def _append(value: Any, text: str) -> list[Any]:
    """``value`` as a list (a single string becomes a list of one, anything else is replaced) plus ``text``
    if it is not already there."""
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    return items if text in items else items + [text]
