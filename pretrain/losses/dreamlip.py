"""DreamLIP losses (arXiv 2403.17007): multi-positive contrastive loss and sub-caption grouping loss.

Written from the paper's equations; the official grouping code's crashes are handled explicitly:
no patch above the threshold, images with fewer than two sub-captions, masked sub-captions, K=1, N=1.
Distributed scaling follows ``contrastive.py``: averaged over ranks, each loss is the global-batch loss.
"""

from __future__ import annotations

from typing import Literal

import torch

from loclip.encoder.collectives import global_count, global_mean

from .contrastive import inverse_temperature, normalize, paired_infonce, zero_with_graph


def multi_positive_loss(
    image_embeds: torch.Tensor,
    sub_text_embeds: torch.Tensor,
    sub_mask: torch.Tensor,
    logit_scale: torch.Tensor,
    local_loss: bool = True,
    filter_threshold: float | None = None,
    filter_ids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Mean over the K sub-caption slots of a symmetric image–sub-caption InfoNCE → ``{"multi_positive": loss}``.

    image_embeds: ``[B, D]``; sub_text_embeds: ``[B, K, D]`` (slot ``k`` holds one sampled sub-caption of
    each image); sub_mask: ``[B, K]`` bool, False where an image has no sub-caption in that slot.
    Slot ``k`` is CLIP's loss between the images and the k-th sub-captions of the global batch, restricted to
    the images whose slot ``k`` is valid: a missing sub-caption removes its image from slot ``k`` as a query
    **and** its text as a candidate. Each slot is the mean over its valid pairs; the loss is the mean over the
    slots that hold at least two valid pairs in the global batch (a slot with fewer has nothing to contrast
    and contributes nothing; no such slot → 0 with a graph). ``filter_threshold`` optionally drops
    near-duplicate sub-captions of *other* images from the denominators (see ``paired_infonce``); off by
    default, as in the paper. ``filter_ids`` (int64 ``[B, K]``, e.g. ``caption_ids`` of the sub-captions) drops
    exactly the candidates that repeat the row's own text instead (identical sentences of other images).
    """
    _check_subcaptions(sub_text_embeds, sub_mask, image_embeds.shape[0], image_embeds.shape[-1])
    if image_embeds.dim() != 2:
        raise ValueError(f"image_embeds must be [B, D], got shape {tuple(image_embeds.shape)}")
    mask = sub_mask.bool()
    total, slots = zero_with_graph(image_embeds, sub_text_embeds), 0
    for k in range(mask.shape[1]):
        keep = mask[:, k]
        share, count = paired_infonce(
            image_embeds[keep],
            sub_text_embeds[keep, k],
            logit_scale,
            local_loss=local_loss,
            filter_threshold=filter_threshold,
            filter_ids=None if filter_ids is None else filter_ids[keep, k],
        )
        total, slots = total + share, slots + (count > 1)  # one pair alone has no negative: 0
    return {"multi_positive": total / max(slots, 1)}


def grouping_weights(patch_embeds: torch.Tensor, sub_text_embeds: torch.Tensor, delta: float) -> torch.Tensor:
    """DreamLIP's sparse patch weights of each sub-caption: ``[B, N, D]``, ``[B, K, D]`` → ``[B, K, N]``.

    For each (image, sub-caption): cosine similarity to every patch, min-max normalised over the patches to
    [0, 1], weights ``< delta`` set to 0, the rest re-normalised to sum to 1.
    - All patches equally similar (incl. ``N == 1``): every patch counts as the most similar (weight 1
      before re-normalisation), i.e. uniform weights.
    - Nothing survives (only possible for ``delta > 1``: the most similar patch always scores 1): one-hot on
      the most similar patch (ties → lowest index), so the grouped embedding is always a patch embedding.
    Gradient: the selection (which patches pass ``delta``) is a hard, non-differentiable decision taken on
    detached values; the surviving weights stay differentiable w.r.t. both patch and text embeddings through
    the similarity and its min-max normalisation (the one-hot fallback is constant).
    """
    patches, texts = normalize(patch_embeds), normalize(sub_text_embeds)
    sim = texts @ patches.transpose(1, 2)
    low, high = sim.amin(-1, keepdim=True), sim.amax(-1, keepdim=True)
    span = high - low
    # Double `where` keeps the unused branch finite, so no NaN reaches the gradient when span == 0.
    scaled = (sim - low) / torch.where(span > 0, span, torch.ones_like(span))
    scaled = torch.where(span > 0, scaled, torch.ones_like(scaled))
    weights = scaled * (scaled.detach() >= delta)
    mass = weights.sum(-1, keepdim=True)
    fallback = torch.nn.functional.one_hot(sim.argmax(-1), sim.shape[-1]).to(weights.dtype)
    return torch.where(mass > 0, weights / torch.where(mass > 0, mass, torch.ones_like(mass)), fallback)


def grouping_loss(
    patch_embeds: torch.Tensor,
    sub_text_embeds: torch.Tensor,
    sub_mask: torch.Tensor,
    logit_scale: torch.Tensor,
    delta: float,
    negatives: Literal["image", "batch"] = "image",
) -> dict[str, torch.Tensor]:
    """Sub-caption-specific grouping loss → ``{"grouping": loss}``.

    patch_embeds: ``[B, N, D]`` (or ``[B, h, w, D]``) patch tokens projected into the embedding space;
    sub_text_embeds: ``[B, K, D]``; sub_mask: ``[B, K]`` bool; logit_scale: log inverse temperature;
    delta: sparsity threshold on the min-max normalised similarities (see ``grouping_weights``).
    Each valid sub-caption groups its image's patches (weighted sum of the L2-normalised patch embeddings)
    and the grouped embedding is contrasted (one direction, grouped → text) with:
    - ``negatives="image"`` (the paper): the other valid sub-captions of the same image. An image with a
      single valid sub-caption has no negative: its sub-caption contributes nothing and is left out of the
      mean (K=1 therefore always gives 0 with a graph — use ``"batch"``).
    - ``negatives="batch"``: every valid sub-caption of the global batch (gathered with gradient).
    Masked sub-captions are neither queries nor candidates. Mean over the contributing sub-captions of the
    global batch; none → 0 with a graph.
    """
    if patch_embeds.dim() == 4:
        patch_embeds = patch_embeds.flatten(1, 2)
    if patch_embeds.dim() != 3 or patch_embeds.shape[1] == 0:
        raise ValueError(f"patch_embeds must be [B, N, D] with N >= 1, got shape {tuple(patch_embeds.shape)}")
    _check_subcaptions(sub_text_embeds, sub_mask, patch_embeds.shape[0], patch_embeds.shape[-1])
    if negatives not in ("image", "batch"):
        raise ValueError(f"negatives must be 'image' or 'batch', got {negatives!r}")
    mask = sub_mask.bool()
    # Padding may hold anything; zeroed, it cannot put NaN into the (unused) rows of masked sub-captions.
    sub_text_embeds = sub_text_embeds.masked_fill(~mask[..., None], 0)
    grouped = grouping_weights(patch_embeds, sub_text_embeds, delta) @ normalize(patch_embeds)  # [B, K, D]
    if negatives == "batch":
        loss, _ = paired_infonce(grouped[mask], sub_text_embeds[mask], logit_scale, symmetric=False)
        return {"grouping": loss}
    logits = inverse_temperature(logit_scale) * normalize(grouped) @ normalize(sub_text_embeds).transpose(1, 2)
    # A finite fill (not -inf) keeps rows of images without sub-captions NaN-free; they are not queries.
    logits = logits.masked_fill(~mask[:, None, :], torch.finfo(logits.dtype).min)
    nll = -logits.log_softmax(-1).diagonal(dim1=-2, dim2=-1)  # [B, K]
    queries = mask & (mask.sum(1, keepdim=True) >= 2)
    total = torch.where(queries, nll, torch.zeros_like(nll)).sum()
    return {"grouping": global_mean(total, global_count(queries.sum(), queries.device))}


def _check_subcaptions(texts: torch.Tensor, mask: torch.Tensor, batch: int, dim: int) -> None:
    if texts.dim() != 3 or texts.shape[0] != batch or texts.shape[-1] != dim:
        raise ValueError(f"sub_text_embeds must be [B={batch}, K, D={dim}], got shape {tuple(texts.shape)}")
    if mask.shape != texts.shape[:2]:
        raise ValueError(f"sub_mask must be [B, K]={tuple(texts.shape[:2])}, got shape {tuple(mask.shape)}")
