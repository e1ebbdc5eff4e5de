"""Reading a written split back as Python objects (for evaluation code and tests)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from loclip.shards.read import iter_samples, open_source

from .world import check_split


@dataclass(frozen=True)
class SceneRecord:
    """One scene as stored: its webdataset ``key``, the decoded RGB ``image`` and its JSON ``meta``
    (``caption``, ``long_captions``, ``regions``, ``objects``, …; see ``records.shard_record``)."""

    key: str
    image: Image.Image
    meta: dict[str, Any]


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
                yield SceneRecord(key, image, json.loads(files["json"]))


def read_conversations(out_dir: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """The split's LLaVA-style records (image paths are relative to the split directory)."""
    return json.loads((split_dir(out_dir, split) / "conversations.json").read_text())
