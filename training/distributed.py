"""Process-group setup for DeepSpeed on one CPU, many CPUs (gloo) or GPUs (NCCL)."""

from __future__ import annotations

import os
import socket
import sys

import torch
import torch.distributed as dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_OWNED: dict[str, str] = {}  # environment variables setup_distributed made up for a group of one


def teardown_distributed() -> None:
    """Forget the environment ``setup_distributed`` made up for a group of one, so child processes do not
    inherit its port. The group itself stays: DeepSpeed cannot re-create it later in the same process."""
    for key in _OWNED:
        os.environ.pop(key, None)
    _OWNED.clear()


def _forget_stale_deepspeed_groups() -> None:
    """DeepSpeed caches its clone of the world group; once a process group was destroyed (a notebook, a test
    suite), a new one would meet that stale clone at the engine's first broadcast. Clear it first."""
    try:
        from deepspeed.utils import groups
    except ImportError:
        return
    if getattr(groups, "_WORLD_GROUP", None) is not None:
        groups._WORLD_GROUP = None


def setup_distributed() -> tuple[int, int, torch.device]:
    """Initialise DeepSpeed's process group; returns (rank, world size, device).

    Launched by ``deepspeed`` or ``torchrun`` the environment names rank and world; run plainly it is
    a group of one on loopback. Backend: NCCL with CUDA, gloo otherwise.
    """
    import deepspeed
    import deepspeed.comm.torch

    if "RANK" not in os.environ:
        own = dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        _OWNED.update({k: v for k, v in own.items() if k not in os.environ})
        os.environ.update(_OWNED)
    if not (dist.is_available() and dist.is_initialized()):
        _forget_stale_deepspeed_groups()
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


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors averaged over the ranks (every rank must call it, with the same keys)."""
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(stacked)
        stacked /= dist.get_world_size()
    return dict(zip(keys, stacked.tolist()))


def sum_over_ranks(counts: dict[str, int]) -> dict[str, int]:
    """Integer counts (e.g. skipped samples by reason) of all ranks added up; every rank must call it."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return dict(counts)
    gathered: list[dict[str, int]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, dict(counts))
    total: dict[str, int] = {}
    for part in gathered:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def collective_device() -> torch.device:
    """Where tensors for a collective must live: the current GPU under NCCL, the CPU under gloo."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def max_over_ranks(value: int) -> int:
    """The largest of an integer code over all ranks (every rank must call it; itself with no group)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return value
    tensor = torch.tensor([value], device=collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())
