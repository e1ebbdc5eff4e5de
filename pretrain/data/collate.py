"""Collation: ``TrainItem``s → one batch of fixed-shape tensors, through ``LoclipProcessor``.

Images and boxes go through the processor in one call, so both get the same letterbox geometry; all texts
(captions, sub-captions, region phrases) go through its tokenizer in one call, padded and truncated to
``max_length`` so shapes never depend on the batch. Masked sub-caption and region slots hold the tokenised
empty string (so no text row is all padding) and zero boxes; losses must use ``sub_mask``/``box_mask``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .sampling import TrainItem

BATCH_KEYS = (
    "pixel_values",
    "original_sizes",
    "input_ids",
    "attention_mask",
    "sub_input_ids",
    "sub_attention_mask",
    "sub_mask",
    "boxes",
    "box_mask",
    "region_input_ids",
    "region_attention_mask",
    "has_regions",
    "keys",
)


def collate(
    items: Sequence[TrainItem], processor: Any, max_length: int, num_subcaptions: int, num_regions: int
) -> dict[str, Any]:
    """Batch ``B`` items with ``K = num_subcaptions``, ``M = num_regions``, ``L = max_length``.

    Returns (``S`` = the processor's image size):
        pixel_values float32 [B, 3, S, S]; original_sizes int64 [B, 2] (height, width);
        input_ids, attention_mask int64 [B, L] (the image-level caption);
        sub_input_ids, sub_attention_mask int64 [B, K, L]; sub_mask bool [B, K];
        boxes float32 [B, M, 4] (normalised model-frame xyxy, zeros where masked); box_mask bool [B, M];
        region_input_ids, region_attention_mask int64 [B, M, L] (the regions' phrases);
        has_regions bool [B] (the image has at least one valid region); keys list[str] of length B.
    """
    B, K, M, L = len(items), num_subcaptions, num_regions, max_length
    texts = [item.caption for item in items]
    texts += [text for item in items for text in item.subcaptions]
    texts += [text for item in items for text in item.phrases + [""] * (M - len(item.phrases))]
    pixel_boxes = [torch.tensor(item.boxes, dtype=torch.float32).reshape(-1, 4) for item in items]
    enc = processor(
        images=[item.image for item in items],
        text=texts,
        boxes=pixel_boxes,
        padding="max_length",
        truncation=True,
        max_length=L,
        return_tensors="pt",
    )
    ids, attention = (enc[name].to(torch.long).split([B, B * K, B * M]) for name in ("input_ids", "attention_mask"))
    boxes = torch.zeros(B, M, 4)
    box_mask = torch.zeros(B, M, dtype=torch.bool)
    R = enc["boxes"].shape[1]  # the longest box list in this batch, at most M
    boxes[:, :R] = enc["boxes"]
    box_mask[:, :R] = enc["box_mask"]
    return {
        "pixel_values": enc["pixel_values"],
        "original_sizes": enc["original_sizes"],
        "input_ids": ids[0],
        "attention_mask": attention[0],
        "sub_input_ids": ids[1].reshape(B, K, L),
        "sub_attention_mask": attention[1].reshape(B, K, L),
        "sub_mask": torch.tensor([item.sub_mask for item in items], dtype=torch.bool).reshape(B, K),
        "boxes": boxes,
        "box_mask": box_mask,
        "region_input_ids": ids[2].reshape(B, M, L),
        "region_attention_mask": attention[2].reshape(B, M, L),
        "has_regions": torch.tensor([item.has_regions for item in items], dtype=torch.bool),
        "keys": [item.key for item in items],
    }
