"""Writing a finished model into its run folder atomically: everything goes to a temporary folder first and is
moved into place file by file only once all of it was written, so a crash never leaves a half-written export."""

from __future__ import annotations

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
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()
