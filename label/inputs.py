"""What to label: input shards (as the pretraining loader names them) or an image folder, as work units.

One unit becomes one output shard of the same name, which is what makes a run resumable shard by shard.
Shards are read with ``loclip.pretrain.data.read_members`` (local paths, brace patterns, globs, directories,
``pipe:`` and URLs). An image folder is listed recursively (sorted) and cut into units of ``shard_size``
images named ``images-000000.tar``, …; a sample's key is its relative path without the extension, with
dots replaced by ``_`` (a webdataset key has none).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from loclip.core.image_loading import RASTER_EXTENSIONS as IMAGE_EXTENSIONS
from loclip.pretrain.data import DataConfig, RawSample, SkipCounter, build_specs, read_members
from loclip.shards.read import DEFAULT_MAX_MEMBER_BYTES
from loclip.shards.skips import MEMBER_TOO_LARGE, SAMPLE_DUPLICATE_KEY, SAMPLE_MISSING_IMAGE

IMAGE_SHARD_NAME = "images-{:06d}.tar"


@dataclass(frozen=True)
class Unit:
    """One input shard: its output ``name``, a ``source`` for messages, its sample count if known, and
    ``read(counter)`` → its raw samples in stored order (container problems counted in ``counter``)."""

    name: str
    source: str
    size: int | None
    read: Callable[[SkipCounter], list[RawSample]]


def shard_units(shards: str | Sequence[str]) -> list[Unit]:
    """Units for webdataset shards; ``ValueError`` when two inputs would write the same output name."""
    specs = build_specs(DataConfig(train_shards=list([shards] if isinstance(shards, str) else shards)))
    units = []
    for spec in specs:
        name = os.path.basename(urlparse(spec.url).path.rstrip("/")) or spec.url
        if not name.endswith(".tar"):
            name += ".tar"
        units.append(Unit(name, spec.url, spec.size, lambda counter, spec=spec: read_members(spec, counter)))
    _check_unique(units)
    return units


def image_units(
    directory: str | os.PathLike, shard_size: int = 1000, max_bytes: int = DEFAULT_MAX_MEMBER_BYTES
) -> list[Unit]:
    """Units of ``shard_size`` images of ``directory`` (recursive, sorted by relative path). A file over
    ``max_bytes`` is skipped and counted unread (``member/too_large``), as a shard member over the limit is."""
    if not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1:
        raise ValueError(f"shard_size must be an int >= 1, got {shard_size!r}")
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"images: {str(directory)!r} is not a directory")
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise ValueError(f"images: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {str(directory)!r}")
    units = []
    for i in range(0, len(files), shard_size):
        chunk = files[i : i + shard_size]
        name = IMAGE_SHARD_NAME.format(i // shard_size)
        read = functools.partial(_read_images, root, chunk, max_bytes=max_bytes)  # read(counter)
        units.append(Unit(name, f"{root}/{chunk[0]}…", len(chunk), read))
    return units


def _read_images(root: Path, files: list[str], counter: SkipCounter, max_bytes: int) -> list[RawSample]:
    samples, keys = [], set()
    for rel in files:
        stem, ext = rel.rsplit(".", 1)
        key = stem.replace(".", "_")
        if key in keys:  # "a.jpg" and "a.png": one key would merge two images into one sample
            counter.add(SAMPLE_DUPLICATE_KEY, rel)
            continue
        keys.add(key)
        try:
            with open(root / rel, "rb") as f:
                # by its size first (never read), then bounded: a file that grew since it was listed stays so
                size = os.fstat(f.fileno()).st_size
                data = f.read(max_bytes + 1) if size <= max_bytes else None
        except OSError as e:
            counter.add(SAMPLE_MISSING_IMAGE, f"{rel}: {e}")
            continue
        if data is None or len(data) > max_bytes:
            counter.add(MEMBER_TOO_LARGE, f"{rel}: over {max_bytes:,} bytes")
            continue
        samples.append(RawSample(key, {ext.lower(): data}, str(root / rel)))
    return samples


def _check_unique(units: list[Unit]) -> None:
    seen: dict[str, str] = {}
    for unit in units:
        if unit.name in seen:
            raise ValueError(
                f"inputs {seen[unit.name]!r} and {unit.source!r} would both be written as {unit.name!r}; "
                "label them into different output folders"
            )
        seen[unit.name] = unit.source


def check_not_inside(units: list[Unit], output_dir: str | os.PathLike) -> None:
    """``ValueError`` when an input shard lives in ``output_dir`` (its output would overwrite it)."""
    out = Path(output_dir).resolve()
    for unit in units:
        path = urlparse(unit.source).path if urlparse(unit.source).scheme == "file" else unit.source
        if os.path.isfile(path) and Path(path).resolve().parent == out:
            raise ValueError(f"output_dir {str(output_dir)!r} holds the input shard {unit.source!r}; choose another")
