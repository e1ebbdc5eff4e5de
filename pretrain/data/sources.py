"""Where samples come from: shard URLs (expanded from patterns) and JSONL chunks, as ``ShardSpec``s.

A ``ShardSpec`` is the unit that the data order shuffles and shares out among ranks and workers: a whole
tar shard, or a run of lines of a JSONL file. Sizes come from a ``sizes.json`` next to local shards
(``{"shard-000000.tar": 1000, ...}``, as the synthetic world writes) or are counted by reading.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from braceexpand import braceexpand

from .config import DataConfig

SIZES_FILE = "sizes.json"


@dataclass(frozen=True)
class ShardSpec:
    """One tar shard (``kind="tar"``, ``url`` anything ``webdataset.gopen`` opens) or one chunk of a JSONL
    file (``kind="jsonl"``: ``lines`` lines from byte ``offset``, the first being line ``first_line``;
    ``size`` of them non-blank; images relative to ``image_root``). ``size`` is ``None`` when unknown."""

    url: str
    kind: Literal["tar", "jsonl"] = "tar"
    size: int | None = None
    offset: int = 0
    first_line: int = 0
    lines: int = 0
    image_root: str = ""


def _local_path(url: str) -> str | None:
    """The filesystem path of a local URL (plain path or ``file:``), else ``None``."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        return urlparse(url).path
    return url if scheme == "" or len(scheme) == 1 else None  # one letter: a Windows drive


def expand_shard_urls(shards: str | Sequence[str], name: str = "train_shards") -> list[str]:
    """Patterns → shard URLs, in order.

    Each entry is brace-expanded (``train-{000000..000009}.tar``); a local result may also be a glob
    (sorted) or a directory (its ``*.tar``, sorted); ``pipe:`` and URL entries are kept as they are.
    A local pattern that matches nothing raises ``ValueError`` naming it.
    """
    entries = [shards] if isinstance(shards, str) else list(shards)
    urls: list[str] = []
    for entry in entries:
        for url in braceexpand(entry):
            path = _local_path(url)
            if path is None:
                urls.append(url)
            elif os.path.isdir(path):
                found = sorted(glob.glob(os.path.join(glob.escape(path), "*.tar")))
                if not found:
                    raise ValueError(f"{name}: directory {path!r} holds no *.tar shards")
                urls.extend(found)
            elif os.path.isfile(path):
                urls.append(url)
            elif glob.has_magic(path) and glob.glob(path):
                urls.extend(sorted(glob.glob(path)))
            else:
                raise ValueError(f"{name}: no shard matches {url!r}")
    if not urls:
        raise ValueError(f"{name} is empty: {shards!r}")
    return urls


def _sizes_json(url: str) -> int | None:
    """The shard's count from a ``sizes.json`` beside it (local shards only), else ``None``."""
    path = _local_path(url)
    if path is None:
        return None
    sizes_path = os.path.join(os.path.dirname(path), SIZES_FILE)
    try:
        with open(sizes_path, encoding="utf-8") as f:
            size = json.load(f).get(os.path.basename(path))
    except (OSError, ValueError, AttributeError, RecursionError):  # unreadable: the shard is counted instead
        return None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def jsonl_specs(path: str, image_root: str | None, chunk_lines: int) -> list[ShardSpec]:
    """Cut a JSONL file into chunks of ``chunk_lines`` lines (one pass; byte offsets let a reader seek)."""
    if not os.path.isfile(path):
        raise ValueError(f"jsonl: no such file {path!r}")
    root = image_root if image_root is not None else os.path.dirname(os.path.abspath(path))
    specs: list[ShardSpec] = []
    offset = line_no = 0
    with open(path, "rb") as f:
        while True:
            start, first, size, n = offset, line_no, 0, 0
            while n < chunk_lines and (line := f.readline()):
                offset += len(line)
                size += bool(line.strip())
                n += 1
            if n == 0:
                return specs
            line_no += n
            specs.append(ShardSpec(path, "jsonl", size, start, first, n, root))


def build_specs(config: DataConfig) -> list[ShardSpec]:
    """All units of the configured sources: shards first, then JSONL chunks."""
    specs = []
    if config.train_shards:
        specs += [ShardSpec(url, "tar", _sizes_json(url)) for url in expand_shard_urls(config.train_shards)]
    if config.jsonl:
        for path in [config.jsonl] if isinstance(config.jsonl, str) else config.jsonl:
            specs += jsonl_specs(path, config.image_root, config.jsonl_chunk_size)
    if not specs:
        raise ValueError(
            f"DataConfig needs train_shards or a non-empty jsonl; got {config.train_shards!r}, {config.jsonl!r}"
        )
    return specs


def fingerprint(specs: Sequence[ShardSpec]) -> str:
    """A short hash of the unit list: a saved data position only means something for the same list."""
    text = "\n".join(f"{s.kind} {s.url} {s.offset} {s.lines}" for s in specs)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
