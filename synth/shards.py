"""Writing a split to disk: webdataset shards, ``sizes.json``, images and ``conversations.json``.

Layout under ``out_dir/{split}/``::

    shard-000000.tar …   members {key}.png, {key}.json and {key}.seg.png (the label map), scene by scene
    sizes.json           {"shard-000000.tar": count, …} in shard order
    images/{key}.png     the same PNGs, for the LLaVA-style conversation file
    conversations.json   [{"id", "image": "images/{key}.png", "conversations", "boxes"}, …]

and ``out_dir/world.json``, the mark of a folder loclip wrote (see ``loclip.synth.ownership``).

Output is byte-identical for the same arguments: tar headers carry fixed times and owners, PNGs
are encoded with fixed settings, JSON keeps insertion order. Every file is written to a temporary
name and renamed, so a crash never leaves a half-written shard under a real name.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from loclip.core.messages import shown
from loclip.shards.write import ShardWriter, atomic_write, json_bytes

from .config import SceneConfig, check_int
from .ownership import check_may_write, mark_world
from .records import conversation_record, shard_record
from .scene import generate_scene
from .world import check_split

SHARD_NAME = "shard-{:06d}.tar"
_SHARD_PATTERN = re.compile(r"shard-\d{6}\.tar")


@dataclass
class SplitSummary:
    """What ``write_split`` wrote: the split directory and scenes per shard (in order)."""

    directory: Path
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def scenes(self) -> int:
        return sum(self.sizes.values())


def encode_png(image: np.ndarray) -> bytes:
    """uint8 ``[H, W, 3]`` (or ``[H, W]``, an ``L`` image) → PNG bytes (fixed compression, no metadata: same
    pixels, same bytes)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class _ShardWriter:
    """Fills ``shard-NNNNNN.tar`` files of ``shard_size`` scenes each, each renamed into place when full."""

    def __init__(self, directory: Path, shard_size: int) -> None:
        self.directory, self.shard_size = directory, shard_size
        self.sizes: dict[str, int] = {}
        self._open: ShardWriter | None = None

    def add(self, key: str, png: bytes, meta: bytes, seg: bytes) -> None:
        if self._open is None:
            name = SHARD_NAME.format(len(self.sizes))
            self.sizes[name] = 0
            self._open = ShardWriter(self.directory / name).open()
        self._open.add(key, {"png": png, "json": meta, "seg.png": seg})
        self.sizes[self._open.path.name] += 1
        if self._open.count == self.shard_size:
            self.close()

    def close(self) -> None:
        """Finish the open shard and rename it into place."""
        if self._open is not None:
            self._open.commit()
            self._open = None

    def abort(self) -> None:
        """Drop the open shard: an interrupted run must not leave a short shard under a real name."""
        if self._open is not None:
            self._open.abort()
            self._open = None


def prepare_directory(out_dir: str | os.PathLike, split: str) -> Path:
    """Create ``out_dir/split/images`` or raise ``ValueError`` saying why ``out_dir`` is unusable."""
    directory = Path(out_dir) / split
    try:
        (directory / "images").mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"out_dir {shown(str(out_dir))} is not a writable directory: {e}") from e
    return directory


def replaced_files(out_dir: str | os.PathLike, split: str, num_scenes: int) -> list[Path]:
    """The files ``write_split(out_dir, split, num_scenes)`` would replace or delete, among those there now:
    the index files, every ``shard-NNNNNN.tar`` (rewritten, or removed as surplus) and the scenes' images."""
    directory = Path(out_dir) / split
    found = [p for p in (directory / "sizes.json", directory / "conversations.json") if os.path.lexists(p)]
    if directory.is_dir():
        found += sorted(p for p in directory.iterdir() if _SHARD_PATTERN.fullmatch(p.name))
    if (directory / "images").is_dir():
        image = re.compile(rf"{re.escape(split)}-(\d{{8}})\.png")
        found += sorted(
            p for p in (directory / "images").iterdir() if (m := image.fullmatch(p.name)) and int(m[1]) < num_scenes
        )
    return found


def write_split(
    out_dir: str | os.PathLike,
    split: str,
    num_scenes: int,
    seed: int,
    config: SceneConfig | None = None,
    shard_size: int = 1000,
    progress: Callable[[int], Any] | None = None,
) -> SplitSummary:
    """Generate scenes ``0..num_scenes-1`` of ``split`` and write them under ``out_dir/split``.

    ``progress`` is called with 1 after each scene (e.g. ``tqdm.update``). ``sizes.json`` and
    ``conversations.json`` are written last, so they exist only for a finished run. Shards left over
    from an earlier, larger run in the same directory are removed, so a glob sees only this run's shards.
    Files are replaced or removed only in loclip's own world (``loclip.synth.ownership``): in another folder
    that holds one of them, a ``ValueError`` names them and nothing is written.
    """
    check_split(split)
    check_int("num_scenes", num_scenes, 1)
    check_int("seed", seed, 0)
    check_int("shard_size", shard_size, 1)
    config = config or SceneConfig()
    check_may_write(out_dir, replaced_files(out_dir, split, num_scenes))
    directory = prepare_directory(out_dir, split)
    mark_world(out_dir)
    for index_file in ("sizes.json", "conversations.json"):  # this run's, or none
        (directory / index_file).unlink(missing_ok=True)

    writer = _ShardWriter(directory, shard_size)
    conversations = []
    try:
        for index in range(num_scenes):
            scene = generate_scene(split, index, seed, config)
            png = encode_png(scene.image)
            image_name = f"images/{scene.key}.png"
            atomic_write(directory / image_name, png)
            writer.add(scene.key, png, json_bytes(shard_record(scene)), encode_png(scene.labels))
            conversations.append(conversation_record(scene, image_name))
            if progress is not None:
                progress(1)
    except BaseException:
        writer.abort()
        raise
    writer.close()

    for stale in directory.iterdir():
        if _SHARD_PATTERN.fullmatch(stale.name) and stale.name not in writer.sizes:
            stale.unlink()
    atomic_write(directory / "sizes.json", json_bytes(writer.sizes))
    atomic_write(directory / "conversations.json", json_bytes(conversations))
    return SplitSummary(directory, dict(writer.sizes))
