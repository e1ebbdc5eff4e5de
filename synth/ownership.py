"""``world.json``: what generated a synthetic-world folder, and the mark that loclip wrote it.

Writing a world replaces files (a split's shards, images and index files, the tokenizer) and deletes a
rewritten split's surplus shards. loclip does that only in a folder whose ``world.json`` is its own. In any
other folder it first looks for the files it would replace or delete, refuses naming them if one exists (a
folder of someone's ``shard-000000.tar``, webdataset's own naming, is never touched), and otherwise marks the
folder with its ``world.json`` before writing anything else, so a rerun after an interruption finds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loclip.core.messages import shown
from loclip.shards.write import atomic_write, json_bytes

from .config import SceneConfig
from .world import COLOURS, NOVEL_PAIR_LIST, SHAPES, SIZES

WORLD_FILE = "world.json"
GENERATOR = "loclip-synth"
_LEGACY_KEYS = {"seed", "config", "shapes", "colours", "sizes", "novel_pairs"}  # world.json before "generator"
_MAX_WORLD_BYTES = 1 << 20  # a world.json is about 1 KB; a larger file is not loclip's
_LISTED = 5  # files named in a refusal; the rest are counted


def world_info(seed: int | None = None, config: SceneConfig | None = None) -> dict[str, Any]:
    """``world.json``: the generator, the seed and scene config when one run wrote every split, the inventory
    and which pairs are held out."""
    info: dict[str, Any] = {"generator": GENERATOR}
    if seed is not None:
        info["seed"] = seed
    if config is not None:
        info["config"] = asdict(config)
    info.update(
        shapes=list(SHAPES), colours=list(COLOURS), sizes=list(SIZES), novel_pairs=[list(p) for p in NOVEL_PAIR_LIST]
    )
    return info


def is_loclip_world(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir/world.json`` is one loclip wrote."""
    path = Path(out_dir) / WORLD_FILE
    try:
        if not path.is_file() or path.stat().st_size > _MAX_WORLD_BYTES:
            return False
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and (info.get("generator") == GENERATOR or set(info) == _LEGACY_KEYS)


def check_may_write(out_dir: str | os.PathLike, would_replace: Iterable[Path], name: str = "out_dir") -> None:
    """Nothing to do when ``out_dir`` is loclip's world; otherwise a ``ValueError`` (naming ``name``, the folder
    and the files) if any of ``would_replace`` (the files a write replaces or deletes, under ``out_dir``), or a
    world.json that is not loclip's, exists."""
    out_dir = Path(out_dir)
    if is_loclip_world(out_dir):
        return
    found = [str(p.relative_to(out_dir)) for p in (out_dir / WORLD_FILE, *would_replace) if os.path.lexists(p)]
    if found:
        listed = ", ".join(shown(f) for f in found[:_LISTED]) + (
            f" and {len(found) - _LISTED:,} more" if len(found) > _LISTED else ""
        )
        raise ValueError(
            f"{name} {shown(str(out_dir))} holds files that loclip did not write (no {WORLD_FILE} of loclip's), "
            f"which writing the world would replace or delete: {listed}; choose a new or empty folder"
        )


def entries(path: Path) -> list[Path]:
    """What writing the folder ``path`` (a tokenizer's) may overwrite: ``path`` itself when it is not a
    folder, else everything in it."""
    if path.is_dir() and not path.is_symlink():
        return sorted(path.iterdir())
    return [path] if os.path.lexists(path) else []


def mark_world(out_dir: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
    """Write ``out_dir/world.json`` (``info``, default ``world_info()``) when there is none, or always when
    ``info`` is given; after ``check_may_write``, so any world.json there is loclip's."""
    path = Path(out_dir) / WORLD_FILE
    if info is not None or not path.exists():
        atomic_write(path, json_bytes(info or world_info()))
