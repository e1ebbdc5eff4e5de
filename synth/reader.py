"""Reading a written split back as Python objects (for evaluation code and tests).

A split is a fixed benchmark, so a damaged one is an error, never a skip that would quietly change the
figures: a shard that is truncated or unreadable, a member that is no regular file, over the member byte
limit, misnamed or repeated, a scene without its image or JSON, an image that is no raster image or larger
than any scene loclip-synth writes (``MAX_IMAGE_SIZE`` squared, checked from its header before decoding),
or a JSON or label map unlike what loclip-synth writes: each is a ``ValueError`` naming the shard and the
scene. Images are decoded through ``loclip.core.image_loading.open_raster`` (raster formats only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from loclip.core.image_loading import open_raster
from loclip.core.json_input import InputRefused, parse_json
from loclip.core.messages import shown, shown_path
from loclip.shards.read import iter_samples
from loclip.shards.streams import STREAM_ERRORS

from .config import MAX_IMAGE_SIZE, SceneConfig
from .scene import generate_scene
from .world import COLOURS, SHAPES, SIZES, check_split

MAX_PIXELS = MAX_IMAGE_SIZE**2  # no scene loclip-synth writes is larger
REWRITE = "write the split again (loclip-synth)"


@dataclass(frozen=True)
class SceneRecord:
    """One scene as stored: its webdataset ``key``, the decoded RGB ``image``, its JSON ``meta``
    (``caption``, ``long_captions``, ``regions``, ``objects``, …; see ``records.shard_record``) and its label
    map (uint8 ``[H, W]``: 0 background, ``k + 1`` for ``regions[k]``; ``None`` in shards written before
    label maps were stored: ``label_map`` regenerates it then)."""

    key: str
    image: Image.Image
    meta: dict[str, Any]
    labels: np.ndarray | None = None


def split_dir(out_dir: str | os.PathLike, split: str) -> Path:
    """``out_dir/split``, or ``ValueError`` if it holds no written split."""
    directory = Path(out_dir) / check_split(split)
    if not (directory / "sizes.json").is_file():
        raise ValueError(f"no {split!r} split in {str(out_dir)!r} (missing {directory / 'sizes.json'})")
    return directory


def shard_paths(out_dir: str | os.PathLike, split: str) -> list[Path]:
    """The split's shards in order, as listed in its ``sizes.json`` (plain file names of the split folder)."""
    directory = split_dir(out_dir, split)
    sizes = _read_json(directory / "sizes.json")
    if not (isinstance(sizes, dict) and all(_plain_name(n) for n in sizes)):
        raise ValueError(
            f"{str(directory / 'sizes.json')!r} must map shard file names of its folder to "
            f"counts, got {shown(sizes)}; {REWRITE}"
        )
    return [directory / name for name in sizes]


def _plain_name(name: Any) -> bool:
    return isinstance(name, str) and 0 < len(name) < 256 and Path(name).name == name


def read_split(out_dir: str | os.PathLike, split: str) -> Iterator[SceneRecord]:
    """Yield the split's scenes in order, straight from its shards (module docstring: what is refused)."""
    for path in shard_paths(out_dir, split):
        yield from _read_shard(path)


def _read_shard(path: Path) -> Iterator[SceneRecord]:
    name = f"synthetic shard {str(path)!r}"

    def refuse(reason: str, detail: str) -> None:
        raise ValueError(f"{name}: {detail} ({reason}); {REWRITE}")

    try:
        with open(path, "rb") as stream:
            for key, files in iter_samples(stream, refuse):
                yield _scene(f"{name}, scene {shown(key)}", key, files)
    except STREAM_ERRORS as e:
        raise ValueError(f"{name} cannot be read (truncated or damaged: {e}); {REWRITE}") from e


def _scene(where: str, key: str, files: dict[str, bytes]) -> SceneRecord:
    missing = [ext for ext in ("png", "json") if ext not in files]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r} member (it has {sorted(files)}); {REWRITE}")
    image = open_raster(files["png"], f"{where} image", MAX_PIXELS).convert("RGB")
    try:
        meta = parse_json(files["json"], f"{where}: its .json member")
    except InputRefused as e:
        raise ValueError(f"{e}; {REWRITE}") from None
    labels = _labels(where, files["seg.png"], image.size) if "seg.png" in files else None
    bad = _bad_field(meta, labels is not None)
    if bad is not None:
        raise ValueError(f"{where}: its JSON's {bad} is not what loclip-synth writes (records.shard_record); {REWRITE}")
    if labels is not None and int(labels.max()) > len(meta["regions"]):
        raise ValueError(
            f"{where}: its label map holds {int(labels.max())} but the scene has "
            f"{len(meta['regions'])} regions; {REWRITE}"
        )
    return SceneRecord(key, image, meta, labels)


def _labels(where: str, data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The ``seg.png`` label map: an ``L`` image of the scene image's ``size`` (width, height)."""
    seg = open_raster(data, f"{where} label map", MAX_PIXELS)
    if seg.mode != "L" or seg.size != size:
        raise ValueError(
            f"{where}: its label map is a {seg.mode} image of {seg.size[0]}x{seg.size[1]} pixels, "
            f"expected L of {size[0]}x{size[1]}; {REWRITE}"
        )
    return np.asarray(seg, dtype=np.uint8)


def _bad_field(meta: Any, has_labels: bool) -> str | None:
    """The first field of a scene's JSON that the readers need and that is not as ``shard_record`` writes it."""
    if not isinstance(meta, dict):
        return "top level (not an object)"
    longs, regions, objects = meta.get("long_captions"), meta.get("regions"), meta.get("objects")
    if not isinstance(meta.get("caption"), str):
        return "caption"
    if not (isinstance(longs, list) and longs and all(isinstance(c, str) for c in longs)):
        return "long_captions"
    if not isinstance(regions, list):
        return "regions"
    if not isinstance(objects, list) or len(objects) != len(regions):
        return "objects"
    for k, (region, obj) in enumerate(zip(regions, objects)):
        box = region.get("bbox") if isinstance(region, dict) else None
        if not (
            isinstance(region, dict)
            and isinstance(region.get("phrase"), str)
            and isinstance(box, list)
            and len(box) == 4
            and all(_is_number(v) for v in box)
        ):
            return f"regions[{k}]"
        if not (
            isinstance(obj, dict)
            and all(
                isinstance(obj.get(f), str) and obj[f] in vocabulary
                for f, vocabulary in (("size", SIZES), ("colour", COLOURS), ("shape", SHAPES))
            )
        ):
            return f"objects[{k}]"
    if not has_labels:  # label_map regenerates the scene from these
        for field in ("index", "seed", "width"):
            if not (isinstance(meta.get(field), int) and not isinstance(meta[field], bool)):
                return field
        if not isinstance(meta.get("split"), str):
            return "split"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_json(path: Path) -> Any:
    try:
        return parse_json(path.read_bytes(), shown_path(path))
    except OSError as e:
        raise ValueError(f"{shown_path(path)} cannot be read ({e.strerror or e}); {REWRITE}") from None
    except InputRefused as e:
        raise ValueError(f"{e}; {REWRITE}") from None


def label_map(record: SceneRecord) -> np.ndarray:
    """The scene's label map: the stored one, else regenerated from its seed with the default ``SceneConfig``
    of its size, which must redraw the stored pixels (``ValueError`` naming the scene otherwise)."""
    if record.labels is not None:
        return record.labels
    meta = record.meta
    scene = generate_scene(meta["split"], meta["index"], meta["seed"], SceneConfig(image_size=meta["width"]))
    if not np.array_equal(scene.image, np.asarray(record.image)):
        raise ValueError(
            f"scene {shown(record.key)} has no stored label map and its seed does not redraw it with "
            "the default scene settings: write the split again (loclip-synth) to store label maps"
        )
    return scene.labels


def read_conversations(out_dir: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """The split's LLaVA-style records (image paths are relative to the split directory)."""
    return _read_json(split_dir(out_dir, split) / "conversations.json")
