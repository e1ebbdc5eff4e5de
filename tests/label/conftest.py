"""Labelling tests start without a leftover process group (the shard readers ask for rank and world)."""

from __future__ import annotations

import pytest
import torch.distributed as dist


@pytest.fixture(autouse=True)
def _no_leftover_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
