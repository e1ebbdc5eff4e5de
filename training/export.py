"""Writing a finished model into its run folder atomically: everything goes to a temporary folder first and is
moved into place file by file only once all of it was written, so a crash never leaves a half-written export.

Exported files get the permissions any new file gets under the user's umask (safetensors writes its file
through a private temporary, mode 0600, which would leave the weights unreadable to the group that can read
the config beside them)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol


class Saveable(Protocol):
    def save_pretrained(self, save_directory: str | Path) -> object: ...


def export_atomic(out: str | Path, *parts: Saveable) -> None:
    """``save_pretrained`` every part (model, processor, ...) into ``out`` itself, via ``out/.export-tmp``."""
    out = Path(out)
    tmp = out / ".export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for part in parts:
        part.save_pretrained(tmp)
    ordinary_permissions(tmp)
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()


def ordinary_permissions(directory: str | Path) -> None:
    """Give ``directory``, and every folder and file under it, the mode a new one gets under the umask."""
    directory = Path(directory)
    file_mode, dir_mode = _umask_modes(directory)
    directory.chmod(dir_mode)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), dir_mode)
        for name in files:
            os.chmod(os.path.join(root, name), file_mode)


def _umask_modes(directory: Path) -> tuple[int, int]:
    """(file mode, folder mode) of a new file and folder: measured on probes in ``directory``, since reading
    the umask (``os.umask``) means setting it, which races with other threads."""
    probe = directory / f".mode-probe-{os.getpid()}"
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        file_mode = probe.stat().st_mode & 0o777
    finally:
        probe.unlink()
    probe.mkdir(0o777)
    try:
        dir_mode = probe.stat().st_mode & 0o777
    finally:
        probe.rmdir()
    return file_mode, dir_mode
