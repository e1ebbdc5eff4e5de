"""Writing webdataset shards: deterministic tar members, written under a temporary name and renamed when whole.

A sample is a ``key`` and its files ``{extension: bytes}``, stored as members ``{key}.{ext}`` in the given order.
Member headers carry fixed times and owners, so the same content gives the same bytes. A shard is written to
a hidden sibling (``.{name}.tmp-{pid}``) and renamed into place by ``commit``: a killed run never leaves a
shard under its real name that is not whole, and ``remove_partial`` clears what it left.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, keys in insertion order (the shards' JSON encoding)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    tmp = temporary_sibling(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically."""
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def remove_partial(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files killed runs left in ``directory`` → what was removed."""
    removed = []
    for p in Path(directory).iterdir():
        if p.name.startswith(".") and TMP_MARK in p.name and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


class ShardWriter:
    """One shard, filled sample by sample and renamed into place by ``commit``.

    Use as a context manager: leaving it with an exception, or without ``commit``, deletes the temporary file
    (``open`` / ``commit`` / ``abort`` do the same by hand, for a writer that outlives one block).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.tmp = temporary_sibling(self.path)
        self.count = 0
        self._tar: tarfile.TarFile | None = None

    def open(self) -> ShardWriter:
        self._tar = tarfile.open(self.tmp, mode="w", format=tarfile.USTAR_FORMAT)
        return self

    def __enter__(self) -> ShardWriter:
        return self.open()

    def add(self, key: str, files: dict[str, bytes]) -> None:
        """Add one sample: ``files`` maps extensions to bytes, written as ``{key}.{ext}`` in the given order."""
        if self._tar is None:
            raise RuntimeError("ShardWriter.add outside its with-block (or after commit)")
        for ext, data in files.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed header: same content, same bytes
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.count += 1

    def commit(self) -> None:
        """Finish the tar and rename it to its real name."""
        if self._tar is None:
            raise RuntimeError("ShardWriter.commit outside its with-block (or twice)")
        self._tar.close()
        self._tar = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the shard if it was not committed: nothing stays under a temporary or a real name."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        self.tmp.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.abort()
