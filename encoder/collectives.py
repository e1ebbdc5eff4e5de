"""Collectives the losses need (the grounding losses in the encoder, the contrastive and region losses in
pretraining), written so that everything also runs in one process with no group.

With no initialised process group (or a world of one) every function is the identity / a local count,
so the losses run unchanged on a CPU laptop and in tests.

Gathers accept a **different number of rows on each rank** (e.g. regions padded per local batch, or an
uneven last batch): rows are padded to the largest rank, gathered, and the padding is cut off again.
Only the first dimension may differ; the others must agree on every rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default group; ``(0, 1)`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_sizes(num_rows: int, device: torch.device | str = "cpu") -> list[int]:
    """Row count of every rank, in rank order (one tiny collective; ``[num_rows]`` with no group)."""
    _, world = rank_and_world()
    if world == 1:
        return [num_rows]
    local = torch.tensor([num_rows], dtype=torch.long, device=device)
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    return [int(p) for p in torch.cat(parts).tolist()]


def gather_rows(x: torch.Tensor, with_grad: bool) -> tuple[torch.Tensor, list[int]]:
    """Concatenate ``x`` ``[n_r, ...]`` of every rank along dim 0 → ``([sum n_r, ...], [n_0, n_1, ...])``.

    ``with_grad=True`` uses ``torch.distributed.nn.functional.all_gather``, whose backward **sums** the
    gradients that all ranks computed for each rank's rows and hands every rank the sum for its own rows.
    """
    _, world = rank_and_world()
    if world == 1:
        return x, [x.shape[0]]
    sizes = gather_sizes(x.shape[0], x.device)
    # At least one row: zero-size collectives are not supported by every backend.
    longest = max(max(sizes), 1)
    is_bool = x.dtype == torch.bool
    y = x.to(torch.uint8) if is_bool else x  # gloo/NCCL do not all move bool tensors
    if y.shape[0] < longest:
        y = torch.cat([y, y.new_zeros((longest - y.shape[0], *y.shape[1:]))])
    if with_grad:
        parts = dist_fn.all_gather(y)
    else:
        with torch.no_grad():
            parts = [torch.empty_like(y) for _ in range(world)]
            dist.all_gather(parts, y.contiguous())
    out = torch.cat([p[:n] for p, n in zip(parts, sizes)])
    return (out.bool() if is_bool else out), sizes


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0, differentiable (identity with no group)."""
    return gather_rows(x, with_grad=True)[0]


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0, detached (identity with no group)."""
    return gather_rows(x.detach(), with_grad=False)[0]


def global_count(local_count: int | torch.Tensor, device: torch.device | str = "cpu") -> int:
    """Sum of an integer count over all ranks."""
    return sum(gather_sizes(int(local_count), device))


def global_mean(local_sum: torch.Tensor, count: int) -> torch.Tensor:
    """This rank's share of ``(sum over all ranks of local_sum) / count``.

    Returns ``world * local_sum / count``, so that **the mean over ranks of the returned values equals the
    global-batch mean**. That is the invariant that makes gradients exact: DDP/DeepSpeed average the
    parameter gradients over ranks, i.e. they differentiate ``mean_r L_r``. ``count == 0`` gives a zero that
    keeps ``local_sum``'s graph.
    """
    _, world = rank_and_world()
    return local_sum * (world / max(count, 1))
