"""Two gloo ranks on CPU, each holding part of a global batch, against the single-process losses.

Checked for every loss: the mean over ranks of each term equals the full-batch term, and each rank's input
gradients divided by the world size (DDP/DeepSpeed average over ranks) equal the full-batch gradients of its
rows; replicated parameters (temperature, bias) get the mean of the ranks' gradients. One spawn runs all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import loclip.pretrain.losses as L
from loclip.training.distributed import free_port

WORLD = 2
B, K, N, M, D = 6, 3, 5, 4, 8
REGION_KEYS = ("regions", "region_texts", "box_mask", "pred_boxes", "target_boxes", "cell_logits", "cell_boxes")
Batch = dict[str, torch.Tensor]
Terms = dict[str, torch.Tensor]


def make_batch() -> Batch:
    g = torch.Generator().manual_seed(1234)
    box_mask = torch.rand(B, M, generator=g) < 0.7
    box_mask[3:, 2:] = False  # rank 1 pads its regions to M=2 only (see CASES)
    box_mask[0, 0] = box_mask[4, 1] = True
    region_texts = torch.randn(B, M, D, generator=g, dtype=torch.float64)
    region_texts[4, 1] = region_texts[0, 0] * 1.5  # a duplicate caption on the other rank: filtered
    sub_mask = torch.rand(B, K, generator=g) < 0.7
    sub_mask[:, 0], sub_mask[:3, 2] = True, False  # slot 2 exists on rank 1 only
    return {
        "image": torch.randn(B, D, generator=g, dtype=torch.float64),
        "text": torch.randn(B, D, generator=g, dtype=torch.float64),
        "subs": torch.randn(B, K, D, generator=g, dtype=torch.float64),
        "sub_mask": sub_mask,
        "patches": torch.randn(B, N, D, generator=g, dtype=torch.float64),
        "regions": torch.randn(B, M, D, generator=g, dtype=torch.float64),
        "region_texts": region_texts,
        "box_mask": box_mask,
        "pred_boxes": random_boxes(g),
        "target_boxes": random_boxes(g),
        "cell_logits": torch.randn(B, M, N, generator=g, dtype=torch.float64),
        "cell_boxes": random_boxes(g, N).permute(1, 2, 0, 3).contiguous(),  # [B, M, N, 4]
        "has_regions": box_mask.any(1),
    }


def random_boxes(g: torch.Generator, *lead: int) -> torch.Tensor:
    corners = torch.rand(*lead, B, M, 2, 2, generator=g, dtype=torch.float64)
    return torch.cat([corners.amin(-2), corners.amax(-2)], -1)


def no_regions_on_rank1(batch: Batch) -> Batch:
    return {**batch, "box_mask": batch["box_mask"] & (torch.arange(B) < 3)[:, None]}


def no_regions(batch: Batch) -> Batch:
    return {**batch, "box_mask": torch.zeros_like(batch["box_mask"])}


def clip(x: Batch, s: torch.Tensor, b: torch.Tensor, local_loss: bool = True) -> Terms:
    return L.clip_loss(x["image"], x["text"], s, local_loss=local_loss)


def siglip(x: Batch, s: torch.Tensor, b: torch.Tensor) -> Terms:
    return L.siglip_loss(x["image"], x["text"], s, b)


def multi_positive(x: Batch, s: torch.Tensor, b: torch.Tensor, local_loss: bool = True) -> Terms:
    return L.multi_positive_loss(x["image"], x["subs"], x["sub_mask"], s, local_loss=local_loss)


def grouping(x: Batch, s: torch.Tensor, b: torch.Tensor, negatives: str = "batch") -> Terms:
    return L.grouping_loss(x["patches"], x["subs"], x["sub_mask"], s, 0.4, negatives)


def region_text(x: Batch, s: torch.Tensor, b: torch.Tensor, local_loss: bool = True) -> Terms:
    return L.region_text_loss(x["regions"], x["region_texts"], x["box_mask"], s, local_loss=local_loss)


def grounding(x: Batch, s: torch.Tensor, b: torch.Tensor) -> Terms:
    return L.grounding_loss(x["pred_boxes"], x["target_boxes"], x["box_mask"], "l1_giou", giou_weight=2.0)


def dense_grounding(x: Batch, s: torch.Tensor, b: torch.Tensor) -> Terms:
    return L.dense_grounding_loss(
        x["cell_logits"], x["cell_boxes"], x["target_boxes"], x["box_mask"], (1, N), "l1_giou", giou_weight=2.0
    )


def weight(x: Batch, s: torch.Tensor, b: torch.Tensor) -> Terms:
    return {"weight": L.region_weight(x["has_regions"], 0.5)}


@dataclass(frozen=True)
class Case:
    loss: Callable[[Batch, torch.Tensor, torch.Tensor], Terms]
    split: int = 3  # rank 0 holds rows [0, split), rank 1 the rest
    kept: int = M  # region slots rank 1 keeps (the rest of its slots are padding)
    transform: Callable[[Batch], Batch] = lambda batch: batch


CASES = {
    "clip_local": Case(clip),
    "clip_global": Case(partial(clip, local_loss=False)),
    "clip_uneven": Case(clip, split=4),
    "siglip": Case(siglip),
    "siglip_uneven": Case(siglip, split=4),
    "multi_positive_local": Case(multi_positive),
    "multi_positive_global": Case(partial(multi_positive, local_loss=False)),
    "grouping_batch": Case(grouping),
    "grouping_image": Case(partial(grouping, negatives="image")),
    "region_text_local": Case(region_text, kept=2),
    "region_text_global": Case(partial(region_text, local_loss=False), kept=2),
    "region_text_rank1_empty": Case(region_text, transform=no_regions_on_rank1),
    "region_text_none": Case(region_text, transform=no_regions),
    "grounding": Case(grounding, kept=2),
    "dense_grounding": Case(dense_grounding, kept=2),
    "region_weight": Case(weight),
}


def local_index(key: str, rank: int, split: int, kept_regions: int) -> tuple[slice, ...]:
    rows = slice(0, split) if rank == 0 else slice(split, B)
    return (rows, slice(0, kept_regions)) if rank == 1 and key in REGION_KEYS else (rows,)


def evaluate(loss: Callable[[Batch, torch.Tensor, torch.Tensor], Terms], batch: Batch) -> dict[str, object]:
    """Terms, input gradients and parameter gradients of one loss on one (local or full) batch."""
    inputs = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in batch.items()}
    scale = torch.tensor(2.3, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    terms = loss(inputs, scale, bias)
    total = sum(terms.values())
    if total.requires_grad:
        total.backward()
    grads = {k: v.grad for k, v in inputs.items() if v.grad is not None}
    return {"terms": {k: v.detach() for k, v in terms.items()}, "grads": grads, "scale": scale.grad, "bias": bias.grad}


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    assert L.rank_and_world() == (rank, WORLD)
    full = make_batch()
    results = {}
    for name, case in CASES.items():
        batch = case.transform(full)
        local = {k: v[local_index(k, rank, case.split, case.kept)] for k, v in batch.items()}
        results[name] = evaluate(case.loss, local)
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def run_ranks(out_dir: Path, timeout_s: float = 120.0) -> list[dict]:
    context = mp.spawn(_worker, args=(free_port(), str(out_dir)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            raise TimeoutError("the gloo ranks did not finish (a collective mismatch hangs)")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_two_ranks_match_the_single_process_global_batch(tmp_path: Path) -> None:
    ranks = run_ranks(tmp_path)
    full = make_batch()
    for name, case in CASES.items():
        want = evaluate(case.loss, case.transform(full))
        for term, value in want["terms"].items():
            mean = sum(r[name]["terms"][term] for r in ranks) / WORLD
            torch.testing.assert_close(mean, value, rtol=1e-6, atol=1e-6, msg=f"{name}/{term}")
        for param in ("scale", "bias"):
            got = [r[name][param] for r in ranks]
            if want[param] is None:
                assert all(g is None or g == 0 for g in got), f"{name}: {param} got a gradient"
            else:
                torch.testing.assert_close(sum(got) / WORLD, want[param], rtol=1e-6, atol=1e-6, msg=f"{name}/{param}")
        for key, grad in want["grads"].items():
            for rank, result in enumerate(ranks):
                index = local_index(key, rank, case.split, case.kept)
                got = result[name]["grads"].get(key, torch.zeros_like(grad[index]))
                torch.testing.assert_close(got / WORLD, grad[index], rtol=1e-6, atol=1e-6, msg=f"{name}/{key}/{rank}")
            if case.kept < M:  # what rank 1 cut off was padding: the full batch gives it no gradient either
                assert grad[case.split :, case.kept :].abs().sum() == 0, name
    assert ranks[1]["region_text_local"]["grads"]["region_texts"].abs().sum() > 0  # cross-rank gradients exist
    assert ranks[0]["region_text_rank1_empty"]["terms"]["region_text"] > 0
