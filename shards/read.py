"""Reading webdataset shards: a tar's members grouped into samples, from a path or any source webdataset opens.

Consecutive members sharing a key form one sample, as in webdataset: the key is the member's path up to the
first dot of its file name, the extension the rest, lower-cased (``a/b.seg.png`` → ``a/b``, ``seg.png``).
Local paths are read with the standard library; URLs and ``pipe:`` sources through ``webdataset.gopen``.

Memory is bounded by the limits, not by what a header claims: a member over ``max_member_bytes`` is skipped
from its tar header and its data streamed past unread (also through gzip, where a 1.6 MB shard can hold a
1.5 GiB member: ``streams`` decompresses in bounded steps), and an extended header (pax records, a GNU long
name), which tarfile reads whole, may not exceed ``MAX_HEADER_BYTES``. Whatever is left out is reported to a
``skip(reason, detail)`` callback (``SkipCounter.add``) with a reason of ``loclip.shards.skips``: nothing is
dropped silently.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable, Iterator
from typing import IO

from loclip.core.messages import shown

from .skips import MEMBER_BAD_NAME, MEMBER_DUPLICATE, MEMBER_NOT_A_FILE, MEMBER_TOO_LARGE, SAMPLE_DUPLICATE_KEY
from .streams import decompressed

# 64 MiB: several times the largest member a real image-text shard holds (web images are JPEGs of well under
# 10 MB; an 8000 x 8000 JPEG, the size of the default pixel limit, takes about 20-30 MB), while a reader with
# a few workers stays within a few hundred MB whatever a shard claims. Large PNGs may need more: raise it.
DEFAULT_MAX_MEMBER_BYTES = 64 * 2**20
MAX_HEADER_BYTES = 2**20  # pax records and long names are metadata: a few hundred bytes in real shards

Skip = Callable[[str, str], None]  # (reason, detail), e.g. SkipCounter.add
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")
_EXTENDED_HEADERS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
_KINDS = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


class _BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses an extended header over ``MAX_HEADER_BYTES`` before tarfile reads it whole
    (``_proc_member`` is tarfile's documented hook for subclasses)."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADERS and self.size > MAX_HEADER_BYTES:
            raise tarfile.ReadError(
                f"an extended tar header of {self.size:,} bytes at byte {self.offset:,}, over "
                f"the limit of {MAX_HEADER_BYTES:,}"
            )
        return super()._proc_member(tar)


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


def iter_members(
    stream: IO[bytes], skip: Skip, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of every regular file in the tar ``stream``, read sequentially (no seeking).

    Skipped and reported to ``skip``: links, devices and FIFOs (``member/not_a_file``: never followed), and
    files over ``max_member_bytes`` by their header (``member/too_large``: their data is never read).
    Directories hold no data and are passed over. A gzip, bzip2 or xz stream is decompressed
    (``streams.decompressed``). One of ``streams.STREAM_ERRORS`` for a damaged or truncated stream.
    """
    with tarfile.open(fileobj=decompressed(stream), mode="r|", tarinfo=_BoundedTarInfo) as tar:
        while (member := tar.next()) is not None:
            tar.members.clear()  # tarfile indexes every member it passes; a stream needs none of them
            if member.isdir():
                continue
            if not member.isfile():
                skip(MEMBER_NOT_A_FILE, f"{shown(member.name)} ({_KINDS.get(member.type, f'type {member.type!r}')})")
            elif member.size > max_member_bytes:
                skip(MEMBER_TOO_LARGE, f"{shown(member.name)}: {member.size:,} bytes, over {max_member_bytes:,}")
            else:
                handle = tar.extractfile(member)
                yield member.name, handle.read() if handle is not None else b""


def iter_samples(
    stream: IO[bytes], skip: Skip, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES, keep_partial: bool = False
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` per sample of the tar ``stream``, in stored order (``iter_members``).

    Also skipped and reported: a member whose name has no extension (``member/bad_name``). Each name is read
    once per shard, and the first wins: a member repeating a name of its sample is skipped
    (``member/duplicate``), and a sample whose key an earlier sample of the shard used is skipped whole
    (``sample/duplicate_key``, once per sample). When the stream fails part-way, ``keep_partial`` yields the
    sample being read (with the members read so far) before the error propagates.
    """
    seen: set[str] = set()
    key, files, repeated = "", {}, False
    try:
        for name, data in iter_members(stream, skip, max_member_bytes):
            parts = split_name(name)
            if parts is None:
                skip(MEMBER_BAD_NAME, shown(name))
                continue
            if parts[0] != key:  # a key is never empty
                if files:
                    yield key, files
                key, files, repeated = parts[0], {}, parts[0] in seen
                if repeated:
                    skip(SAMPLE_DUPLICATE_KEY, shown(key))
                seen.add(key)
            if repeated:
                continue
            if parts[1] in files:
                skip(MEMBER_DUPLICATE, shown(name))
                continue
            files[parts[1]] = data
    except Exception:
        if keep_partial and files:
            yield key, files
        raise
    if files:
        yield key, files
