"""The synthetic world a quickstart trains on: made once under a run folder, reused while complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import SceneConfig
from .ownership import check_may_write, entries
from .shards import replaced_files, write_split
from .tokenizer import build_tokenizer


def ensure_world(
    directory: str | os.PathLike, counts: dict[str, int], seed: int, config: SceneConfig, max_length: int
) -> Path:
    """Write each split of ``counts`` (``{"train": 6000, "val": 200}``) under ``directory`` unless a finished
    split of that size is already there, and the world's tokenizer (``model_max_length=max_length``) unless
    saved before; returns the tokenizer's directory. A folder loclip did not write is refused (``ValueError``
    naming the files it would replace) before anything is written."""
    directory = Path(directory)
    missing = {split: n for split, n in counts.items() if _scenes(directory / split) != n}
    tokenizer = directory / "tokenizer"
    new_tokenizer = not (tokenizer / "tokenizer.json").is_file()
    if missing or new_tokenizer:  # refuse a folder loclip did not write before any split is written
        replaced = [p for split, n in missing.items() for p in replaced_files(directory, split, n)]
        check_may_write(
            directory, replaced + (entries(tokenizer) if new_tokenizer else []), name="the synthetic world folder"
        )
    for split, n in missing.items():
        write_split(directory, split, n, seed=seed, config=config)
    if new_tokenizer:
        build_tokenizer(model_max_length=max_length).save_pretrained(tokenizer)
    return tokenizer


def _scenes(split_dir: Path) -> int | None:
    """Scenes of a finished split (its ``sizes.json``), ``None`` when there is none that reads."""
    try:
        sizes = json.loads((split_dir / "sizes.json").read_text())
        return sum(sizes.values())
    except (OSError, ValueError, AttributeError, TypeError):
        return None
