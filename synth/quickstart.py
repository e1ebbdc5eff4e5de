"""The synthetic world a quickstart trains on: made once under a run folder, reused while complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import SceneConfig
from .shards import write_split
from .tokenizer import build_tokenizer


def ensure_world(
    directory: str | os.PathLike, counts: dict[str, int], seed: int, config: SceneConfig, max_length: int
) -> Path:
    """Write each split of ``counts`` (``{"train": 6000, "val": 200}``) under ``directory`` unless a finished
    split of that size is already there, and the world's tokenizer (``model_max_length=max_length``) unless
    saved before; returns the tokenizer's directory."""
    directory = Path(directory)
    for split, n in counts.items():
        marker = directory / split / "sizes.json"
        if not (marker.is_file() and sum(json.loads(marker.read_text()).values()) == n):
            write_split(directory, split, n, seed=seed, config=config)
    tokenizer = directory / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        build_tokenizer(model_max_length=max_length).save_pretrained(tokenizer)
    return tokenizer
