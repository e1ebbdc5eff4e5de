"""Reading a written split back as Python objects (for evaluation code and tests)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from loclip.shards.read import iter_samples, open_source

from .config import SceneConfig
from .scene import generate_scene
from .world import check_split


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
    """The split's shards in order, as listed in its ``sizes.json``."""
    directory = split_dir(out_dir, split)
    sizes = json.loads((directory / "sizes.json").read_text())
    return [directory / name for name in sizes]


def read_split(out_dir: str | os.PathLike, split: str) -> Iterator[SceneRecord]:
    """Yield the split's scenes in order, straight from its shards."""
    for path in shard_paths(out_dir, split):
        with open_source(str(path)) as stream:
            for key, files in iter_samples(stream):
                image = Image.open(io.BytesIO(files["png"])).convert("RGB")
                seg = files.get("seg.png")
                labels = np.asarray(Image.open(io.BytesIO(seg)), dtype=np.uint8) if seg is not None else None
                yield SceneRecord(key, image, json.loads(files["json"]), labels)


def label_map(record: SceneRecord) -> np.ndarray:
    """The scene's label map: the stored one, else regenerated from its seed with the default ``SceneConfig``
    of its size, which must redraw the stored pixels (``ValueError`` naming the scene otherwise)."""
    if record.labels is not None:
        return record.labels
    meta = record.meta
    scene = generate_scene(meta["split"], meta["index"], meta["seed"], SceneConfig(image_size=meta["width"]))
    if not np.array_equal(scene.image, np.asarray(record.image)):
        raise ValueError(f"scene {record.key!r} has no stored label map and its seed does not redraw it with the "
                         "default scene settings: write the split again (loclip-synth) to store label maps")
    return scene.labels


def read_conversations(out_dir: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """The split's LLaVA-style records (image paths are relative to the split directory)."""
    return json.loads((split_dir(out_dir, split) / "conversations.json").read_text())
