"""Pretraining tests start without a leftover process group (see the fixture)."""

from __future__ import annotations

import pytest
import torch.distributed as dist


@pytest.fixture(autouse=True)
def _no_leftover_process_group() -> None:
    """Trainer tests elsewhere may leave a group of one in this process; the data loader reads rank and
    world size from an initialised group, so start these tests without one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
