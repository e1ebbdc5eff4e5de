"""Reading webdataset shards: a tar's members grouped into samples, from a path or any source webdataset opens.

Consecutive members sharing a key form one sample, as in webdataset: the key is the member's path up to the
first dot of its file name, the extension the rest, lower-cased (``a/b.seg.png`` → ``a/b``, ``seg.png``).
Local paths are read with the standard library; URLs and ``pipe:`` sources through ``webdataset.gopen``.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterator
from typing import IO

_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def split_name(name: str) -> tuple[str, str] | None:
    """A member name → ``(key, extension)``, or ``None`` when it has no extension (not a sample file)."""
    match = _KEY.match(name)
    return (match[1], match[2].lower()) if match else None


def open_source(url: str) -> IO[bytes]:
    """A binary stream of ``url``: a local path, or ``pipe:``/``http(s)://``/… through webdataset."""
    if "://" not in url and not url.startswith("pipe:"):
        return open(url, "rb")
    from webdataset.gopen import gopen  # the train extra; local shards need no webdataset

    return gopen(url, "rb")


def iter_members(stream: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of every regular file in the tar ``stream``, read sequentially (no seeking)."""
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                yield member.name, handle.read() if handle is not None else b""


def iter_samples(
    stream: IO[bytes], bad_name: Callable[[str], None] | None = None
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per sample of the tar ``stream``, in stored order.

    ``bad_name(name)`` is called for a member whose name has no extension (skipped)."""
    key: str | None = None
    files: dict[str, bytes] = {}
    for name, data in iter_members(stream):
        parts = split_name(name)
        if parts is None:
            if bad_name is not None:
                bad_name(name)
            continue
        if parts[0] != key:
            if key is not None:
                yield key, files
            key, files = parts[0], {}
        files[parts[1]] = data
    if key is not None:
        yield key, files
