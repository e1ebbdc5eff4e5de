"""Losses of the grounding heads: ``grounding_loss`` is ``BoxHead.loss``, ``dense_grounding_loss`` is
``DenseBoxHead.loss``. A model that trains a head (the encoder in pretraining, the MLLM's ``<ground>`` answers)
asks its head for the loss (``model.box_head.loss(output, ...)``) and needs no trainer.

Distributed scaling as everywhere in loclip's losses: averaged over ranks, each loss is the global-batch
loss (``collectives.global_mean``), and ranks may hold different numbers of boxes. No process group: plain
single-process losses.
"""

from __future__ import annotations

import torch

from .boxes import generalized_box_iou, patch_coverage
from .choices import BOX_LOSSES, BoxLoss, check_choice
from .collectives import global_count, global_mean


def as_float(x: torch.Tensor) -> torch.Tensor:
    """At least float32: bf16/fp16 activations are promoted for the loss math, float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def check_same_shape(
    a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str, layout: str, last: int | None = None
) -> None:
    """``ValueError`` unless ``a`` and ``b`` have one shape with as many dims as ``layout`` (e.g. "[B, D]")."""
    if a.dim() != layout.count(",") + 1 or a.shape != b.shape or (last is not None and a.shape[-1] != last):
        raise ValueError(f"{a_name} and {b_name} must both be {layout}; got {tuple(a.shape)} and {tuple(b.shape)}")


def grounding_loss(
    pred_boxes: torch.Tensor,
    target_boxes: torch.Tensor,
    box_mask: torch.Tensor,
    kind: BoxLoss = "l2",
    giou_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Box regression loss over the valid boxes of the global batch.

    pred_boxes, target_boxes: ``[B, M, 4]`` normalised xyxy (convert a cxcywh head with
    ``loclip.encoder.boxes.cxcywh_to_xyxy`` first); box_mask: ``[B, M]`` bool.
    - ``kind="l2"`` (CLOC): ``{"ground_l2": mean over boxes of the squared L2 distance of the 4 coordinates}``.
    - ``kind="l1_giou"`` (DETR style): ``{"ground_l1": mean over boxes of the summed |coordinate error|,
      "ground_giou": giou_weight * mean over boxes of (1 - GIoU)}``.
    The terms are meant to be summed. No valid box → zeros with a graph.
    """
    check_choice("kind", kind, BOX_LOSSES)
    check_same_shape(pred_boxes, target_boxes, "pred_boxes", "target_boxes", "[B, M, 4]", last=4)
    valid = check_mask(box_mask, pred_boxes.shape[:2])
    pred, target = as_float(pred_boxes)[valid], as_float(target_boxes)[valid]
    count = global_count(valid.sum(), valid.device)
    if kind == "l2":
        return {"ground_l2": global_mean((pred - target).pow(2).sum(), count)}
    return {
        "ground_l1": global_mean((pred - target).abs().sum(), count),
        "ground_giou": giou_weight * global_mean((1 - generalized_box_iou(pred, target)).sum(), count),
    }


def dense_grounding_loss(
    cell_logits: torch.Tensor,
    cell_boxes: torch.Tensor,
    target_boxes: torch.Tensor,
    box_mask: torch.Tensor,
    grid: tuple[int, int],
    kind: BoxLoss = "l2",
    giou_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Loss of the dense grounding head (``DenseBoxHead``) over the valid boxes of the global batch.

    cell_logits: ``[B, M, N]``; cell_boxes: ``[B, M, N, 4]`` normalised xyxy; target_boxes: ``[B, M, 4]``;
    box_mask: ``[B, M]`` bool; grid: ``(h, w)`` with ``h * w = N``.
    Each target spreads over the cells it covers, in proportion to the covered share of each cell (``q``):
    - ``ground_cell``: cross-entropy of the cell scores against ``q`` (which cells hold the phrase);
    - the box terms of ``grounding_loss`` (``kind``) for every cell's box, weighted by ``q``, so whichever
      covered cell wins at inference has learnt the whole box.
    No valid box → zeros with a graph.
    """
    check_choice("kind", kind, BOX_LOSSES)
    b, m, n = cell_logits.shape
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid {tuple(grid)} has {grid[0] * grid[1]} cells but cell_logits has {n}")
    if cell_boxes.shape != (b, m, n, 4):
        raise ValueError(f"cell_boxes must be [B, M, N, 4] = {(b, m, n, 4)}, got {tuple(cell_boxes.shape)}")
    check_same_shape(cell_boxes[:, :, 0], target_boxes, "cell_boxes[:, :, 0]", "target_boxes", "[B, M, 4]", last=4)
    valid = check_mask(box_mask, (b, m))
    target = as_float(target_boxes)[valid]  # [V, 4]
    cover = patch_coverage(target[None], grid)[0]  # [V, N]
    # A degenerate (zero-area) box covers nothing: it names the cell holding its centre instead.
    h, w = grid
    centre = (target[:, :2] + target[:, 2:]) / 2
    cx = (centre[:, 0] * w).long().clamp(0, w - 1)
    cy = (centre[:, 1] * h).long().clamp(0, h - 1)
    empty = cover.sum(-1) <= 0
    cover[empty, (cy * w + cx)[empty]] = 1.0
    q = cover / cover.sum(-1, keepdim=True)
    logp = as_float(cell_logits)[valid].log_softmax(-1)
    pred = as_float(cell_boxes)[valid]  # [V, N, 4]
    count = global_count(valid.sum(), valid.device)
    terms = {"ground_cell": global_mean(-(q * logp).sum(), count)}
    tgt = target[:, None].expand_as(pred)
    if kind == "l2":
        terms["ground_l2"] = global_mean((q * (pred - tgt).pow(2).sum(-1)).sum(), count)
    else:
        giou = generalized_box_iou(pred, tgt)
        terms["ground_l1"] = global_mean((q * (pred - tgt).abs().sum(-1)).sum(), count)
        terms["ground_giou"] = giou_weight * global_mean((q * (1 - giou)).sum(), count)
    return terms


def check_mask(box_mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if box_mask.shape != shape:
        raise ValueError(f"box_mask must be [B, M]={tuple(shape)}, got shape {tuple(box_mask.shape)}")
    return box_mask.bool()
