"""Process-group setup for DeepSpeed on one CPU, many CPUs (gloo) or GPUs (NCCL)."""

from __future__ import annotations

import os
import socket
import sys

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_distributed() -> tuple[int, int, torch.device]:
    """Initialise DeepSpeed's process group; returns (rank, world size, device).

    Launched by ``deepspeed`` or ``torchrun`` the environment names rank and world; run plainly it is
    a group of one on loopback. Backend: NCCL with CUDA, gloo otherwise.
    """
    import deepspeed
    import deepspeed.comm.torch  # noqa: F401  (so it is in sys.modules below)

    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    cuda = torch.cuda.is_available()
    if not cuda:
        # DeepSpeed JIT-compiles a shared-memory all-reduce for CPU inference at group creation (~1 min
        # on a fresh machine). Training never uses it, so skip the build.
        sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")
