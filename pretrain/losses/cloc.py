"""CLOC losses (arXiv 2410.02746): region–text InfoNCE with text filtering, grounding, region weighting.

Distributed scaling follows ``contrastive.py``: averaged over ranks, each loss is the global-batch loss,
and ranks may hold different numbers of regions (e.g. ``M`` padded per local batch).
"""

from __future__ import annotations

from typing import Literal

import torch

from loclip.encoder.boxes import generalized_box_iou
from loclip.encoder.prompter import Prompter

from .contrastive import as_float, check_same_shape, paired_infonce
from .distributed import gather_no_grad, global_count, global_mean


def region_text_loss(
    region_embeds: torch.Tensor,
    region_text_embeds: torch.Tensor,
    box_mask: torch.Tensor,
    logit_scale: torch.Tensor,
    filter_threshold: float | None = 0.9,
    local_loss: bool = True,
    filter_embeds: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE between every valid region and every valid region caption of the global batch.

    region_embeds: ``[B, M, D]`` (Prompter outputs); region_text_embeds: ``[B, M, D]`` (their captions);
    box_mask: ``[B, M]`` bool, False for padding; logit_scale: log inverse temperature.
    Both directions (region → captions, caption → regions), mean over the valid regions of the global batch.
    Text filtering: a negative whose caption has cosine similarity ``> filter_threshold`` with the positive's
    caption leaves that row's denominator (both directions; decided without gradient; the positive always
    stays, so exact duplicate captions only lose their duplicates). ``None`` disables it.
    filter_embeds: ``[B, M, E]`` what the filter compares instead of ``region_text_embeds`` (e.g. identity
    codes of the captions, so that only identical captions are filtered).
    No valid region anywhere → ``{"region_text": 0}`` with a graph, so backward (and its collectives) runs.
    """
    check_same_shape(region_embeds, region_text_embeds, "region_embeds", "region_text_embeds", "[B, M, D]")
    valid = _check_mask(box_mask, region_embeds.shape[:2])
    loss, _ = paired_infonce(
        region_embeds[valid], region_text_embeds[valid], logit_scale,
        local_loss=local_loss, filter_threshold=filter_threshold,
        filter_keys=None if filter_embeds is None else filter_embeds[valid],
    )  # fmt: skip
    return {"region_text": loss}


def grounding_loss(
    pred_boxes: torch.Tensor,
    target_boxes: torch.Tensor,
    box_mask: torch.Tensor,
    kind: Literal["l2", "l1_giou"] = "l2",
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
    if kind not in ("l2", "l1_giou"):
        raise ValueError(f"kind must be 'l2' or 'l1_giou', got {kind!r}")
    check_same_shape(pred_boxes, target_boxes, "pred_boxes", "target_boxes", "[B, M, 4]", last=4)
    valid = _check_mask(box_mask, pred_boxes.shape[:2])
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
    kind: Literal["l2", "l1_giou"] = "l2",
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
    if kind not in ("l2", "l1_giou"):
        raise ValueError(f"kind must be 'l2' or 'l1_giou', got {kind!r}")
    b, m, n = cell_logits.shape
    if grid[0] * grid[1] != n:
        raise ValueError(f"grid {tuple(grid)} has {grid[0] * grid[1]} cells but cell_logits has {n}")
    if cell_boxes.shape != (b, m, n, 4):
        raise ValueError(f"cell_boxes must be [B, M, N, 4] = {(b, m, n, 4)}, got {tuple(cell_boxes.shape)}")
    check_same_shape(cell_boxes[:, :, 0], target_boxes, "cell_boxes[:, :, 0]", "target_boxes", "[B, M, 4]", last=4)
    valid = _check_mask(box_mask, (b, m))
    target = as_float(target_boxes)[valid]  # [V, 4]
    cover = Prompter.patch_coverage(target[None], grid)[0]  # [V, N]
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


def region_weight(has_regions: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam`` × the share of images of the global batch that carry regions (a detached scalar).

    has_regions: ``[B]`` bool. Multiply the region terms by it: a batch where few images have regions
    contributes proportionally less region signal (CLOC). An empty global batch gives 0.
    """
    if has_regions.dim() != 1:
        raise ValueError(f"has_regions must be [B], got shape {tuple(has_regions.shape)}")
    flags = gather_no_grad(has_regions.bool()).float()
    return lam * flags.mean() if flags.numel() else flags.new_zeros(())


def _check_mask(box_mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if box_mask.shape != shape:
        raise ValueError(f"box_mask must be [B, M]={tuple(shape)}, got shape {tuple(box_mask.shape)}")
    return box_mask.bool()
