"""A shard's byte stream with its compression undone in bounded steps: gzip, bzip2 and xz are recognised by
their magic bytes (as tarfile's ``r|*`` does) and decompressed by their own modules, which never inflate more
than each read asks for. tarfile's stream reader inflates a whole compressed block at once (10 KB of a gzip
bomb give 10 MB) and then copies what is left for every block it hands on, so skipping one 1.5 GiB member of
a 1.6 MB gzip shard took tens of MB of memory and minutes of CPU; through these readers it takes a few
hundred KB and the time of the decompression itself.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from typing import IO

_MAGIC = (
    (b"\x1f\x8b", lambda s: gzip.GzipFile(fileobj=s, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)
# what a damaged, truncated or misnamed shard raises while it is read (a failing pipe: OSError)
STREAM_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


class _Prefixed(io.RawIOBase):
    """``head`` then the rest of ``stream``: the bytes read to recognise a format, put back."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]  # any writable buffer
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def decompressed(stream: IO[bytes]) -> IO[bytes]:
    """``stream`` itself as a buffered reader, or its decompressed content when it starts like gzip, bzip2 or
    xz (read sequentially: a pipe or a socket works)."""
    head = stream.read(6)
    raw = io.BufferedReader(_Prefixed(head, stream))
    for magic, reader in _MAGIC:
        if head.startswith(magic):
            return reader(raw)
    return raw
