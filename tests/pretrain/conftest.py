"""Scenes and a written synthetic-world directory shared by the synth tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

from loclip.pretrain.synth import Scene, SceneConfig, generate_scene, write_split

SEED = 7
SMALL = SceneConfig(image_size=48, max_objects=6)


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    """300 scenes across all splits, at the default 64 px."""
    counts = {"train": 150, "val": 25, "test": 25, "novel": 100}
    return [generate_scene(split, i, SEED) for split, n in counts.items() for i in range(n)]


@pytest.fixture(scope="session")
def synth_seed() -> int:
    return SEED


@pytest.fixture(scope="session")
def synth_config() -> SceneConfig:
    return SMALL


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with 23 train scenes (shards of 5) and 6 novel scenes, at 48 px."""
    out = tmp_path_factory.mktemp("synth")
    write_split(out, "train", 23, SEED, SMALL, shard_size=5)
    write_split(out, "novel", 6, SEED, SMALL, shard_size=5)
    return out


@pytest.fixture(autouse=True)
def _no_leftover_process_group() -> None:
    """Trainer tests elsewhere may leave a group of one in this process; the data loader reads rank and
    world size from an initialised group, so start these tests without one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
