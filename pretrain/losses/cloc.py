"""CLOC losses (arXiv 2410.02746): region–text InfoNCE with text filtering and region weighting; the
grounding losses belong to the box heads and live beside them (``loclip.encoder.grounding_loss``).

Distributed scaling follows ``contrastive.py``: averaged over ranks, each loss is the global-batch loss,
and ranks may hold different numbers of regions (e.g. ``M`` padded per local batch).
"""

from __future__ import annotations

import torch

from loclip.encoder.collectives import gather_no_grad
from loclip.encoder.grounding_loss import check_mask, check_same_shape, dense_grounding_loss, grounding_loss

from .contrastive import paired_infonce

__all__ = ["dense_grounding_loss", "grounding_loss", "region_text_loss", "region_weight"]


def region_text_loss(
    region_embeds: torch.Tensor,
    region_text_embeds: torch.Tensor,
    box_mask: torch.Tensor,
    logit_scale: torch.Tensor,
    filter_threshold: float | None = 0.9,
    local_loss: bool = True,
    filter_embeds: torch.Tensor | None = None,
    filter_ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE between every valid region and every valid region caption of the global batch.

    region_embeds: ``[B, M, D]`` (Prompter outputs); region_text_embeds: ``[B, M, D]`` (their captions);
    box_mask: ``[B, M]`` bool, False for padding; logit_scale: log inverse temperature.
    Both directions (region → captions, caption → regions), mean over the valid regions of the global batch.
    Text filtering: a negative whose caption has cosine similarity ``> filter_threshold`` with the positive's
    caption leaves that row's denominator (both directions; decided without gradient; the positive always
    stays, so exact duplicate captions only lose their duplicates). ``None`` disables it.
    filter_embeds: ``[B, M, E]`` what the filter compares instead of ``region_text_embeds`` (e.g. identity
    embeddings of another text tower).
    filter_ids: ``[B, M]`` int64 caption identities (``objective.caption_ids``): filter exactly the candidates
    whose caption is identical to the positive's, instead of comparing embeddings.
    No valid region anywhere → ``{"region_text": 0}`` with a graph, so backward (and its collectives) runs.
    """
    check_same_shape(region_embeds, region_text_embeds, "region_embeds", "region_text_embeds", "[B, M, D]")
    valid = check_mask(box_mask, region_embeds.shape[:2])
    loss, _ = paired_infonce(
        region_embeds[valid],
        region_text_embeds[valid],
        logit_scale,
        local_loss=local_loss,
        filter_threshold=filter_threshold,
        filter_keys=None if filter_embeds is None else filter_embeds[valid],
        filter_ids=None if filter_ids is None else filter_ids[valid],
    )
    return {"region_text": loss}


def region_weight(has_regions: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam`` × the share of images of the global batch that carry regions (a detached scalar).

    has_regions: ``[B]`` bool. Multiply the region terms by it: a batch where few images have regions
    contributes proportionally less region signal (CLOC). An empty global batch gives 0.
    """
    if has_regions.dim() != 1:
        raise ValueError(f"has_regions must be [B], got shape {tuple(has_regions.shape)}")
    flags = gather_no_grad(has_regions.bool()).float()
    return lam * flags.mean() if flags.numel() else flags.new_zeros(())
