"""Reading one ``ShardSpec`` into memory as undecoded ``RawSample``s (images stay bytes until decoded).

Tar shards are streamed through ``loclip.shards.read`` (local paths, and ``pipe:``, http(s), … through
``webdataset.gopen``); consecutive members sharing a key form one sample, as in webdataset. A shard that
cannot be opened, or fails part-way (truncated file, failing pipe), is counted and its members read until
then are kept: the failure is reported, the run goes on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from loclip.shards.read import DEFAULT_MAX_MEMBER_BYTES, iter_samples, open_source
from loclip.shards.skips import SHARD_TRUNCATED, SHARD_UNREADABLE, SkipCounter

from .sources import ShardSpec

logger = logging.getLogger(__name__)


@dataclass
class RawSample:
    """One sample as stored: ``files`` maps a lower-case extension (``"json"``, ``"png"``, …) to bytes.
    ``image_root`` is set for JSONL samples, whose image is the file named by the JSON's ``"image"``."""

    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    source: str = ""
    image_root: str | None = None


def read_members(
    spec: ShardSpec, counter: SkipCounter, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
) -> list[RawSample]:
    """All samples of ``spec`` in stored order; problems with the container itself go to ``counter``
    (``loclip.shards.read.iter_samples``: members that are no regular file, over ``max_member_bytes``,
    misnamed or repeated are skipped and counted)."""
    if spec.kind == "jsonl":
        return _read_jsonl_chunk(spec, counter)
    return _read_tar(spec.url, counter, max_member_bytes)


def _read_tar(url: str, counter: SkipCounter, max_member_bytes: int) -> list[RawSample]:
    samples: list[RawSample] = []
    try:
        stream = open_source(url)
    except Exception as e:  # any opener failure (missing file, unknown scheme, …) is a data problem here
        _shard_failed(counter, SHARD_UNREADABLE, url, e)
        return samples
    error: BaseException | None = None

    def skip(reason: str, detail: str) -> None:
        counter.add(reason, f"{detail} in {url}")

    try:
        for key, files in iter_samples(stream, skip, max_member_bytes, keep_partial=True):
            samples.append(RawSample(key, files, url))
    except Exception as e:  # tarfile.ReadError, EOFError, a pipe's non-zero exit, a network error, …
        error = e
    try:
        stream.close()  # a pipe reports its exit status here
    except Exception as e:
        error = error or e
    if error is not None:
        _shard_failed(counter, SHARD_TRUNCATED if samples else SHARD_UNREADABLE, url, error)
    return samples


def _read_jsonl_chunk(spec: ShardSpec, counter: SkipCounter) -> list[RawSample]:
    samples: list[RawSample] = []
    name = os.path.basename(spec.url)
    try:
        with open(spec.url, "rb") as f:
            f.seek(spec.offset)
            for i in range(spec.lines):
                line = f.readline()
                if line.strip():  # blank lines are not samples
                    key = f"{name}:{spec.first_line + i}"
                    samples.append(RawSample(key, {"json": line}, spec.url, spec.image_root))
    except OSError as e:
        _shard_failed(counter, SHARD_TRUNCATED if samples else SHARD_UNREADABLE, spec.url, e)
    return samples


def _shard_failed(counter: SkipCounter, reason: str, url: str, error: BaseException) -> None:
    counter.add(reason, url)
    logger.warning("data source %s: %s (%s: %s)", url, reason, type(error).__name__, error)
