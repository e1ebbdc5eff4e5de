"""The pretraining objective: one module the DeepSpeed engine wraps, batch in, (loss, named terms) out.

It runs the vision trunk once, the text tower on the captions and on the valid sub-caption and
region-phrase rows only, then the loss terms the recipe turns on.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from loclip.encoder import LoclipModel

from .config import LossRecipe
from .losses import (
    clip_loss,
    dense_grounding_loss,
    grounding_loss,
    grouping_loss,
    multi_positive_loss,
    region_text_loss,
    region_weight,
    siglip_loss,
)


@functools.lru_cache(maxsize=8)
def _code_projection(length: int, dim: int) -> torch.Tensor:
    """The fixed random projection of ``caption_codes`` (made once per shape, not every step)."""
    g = torch.Generator().manual_seed(0x10C11)
    return torch.randn(length, dim, generator=g) * 100.0


def caption_codes(input_ids: torch.Tensor, attention_mask: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """Identity codes of token sequences ``[..., L]`` → ``[..., dim]``: equal sequences get equal codes,
    different ones nearly orthogonal codes (random Fourier features of the ids with a fixed seed, so every
    rank computes the same). Lets the text filter drop exact duplicates only."""
    proj = _code_projection(input_ids.shape[-1], dim).to(input_ids.device)
    ids = (input_ids * attention_mask).to(proj.dtype)
    return torch.sin(ids @ proj + 1.0)


def _encode_rows(model: LoclipModel, ids: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Text embeddings for the rows of ``ids [..., L]`` where ``valid [...]``; zeros elsewhere. → ``[..., D]``."""
    lead = ids.shape[:-1]
    flat_ids, flat_mask, flat_valid = ids.reshape(-1, ids.shape[-1]), mask.reshape(-1, ids.shape[-1]), valid.reshape(-1)
    out = torch.zeros(flat_ids.shape[0], model.config.projection_dim, dtype=model.dtype, device=ids.device)
    if flat_valid.any():
        emb = model.get_text_features(flat_ids[flat_valid], flat_mask[flat_valid])
        out = out.index_put((flat_valid.nonzero()[:, 0],), emb.to(out.dtype))
    return out.reshape(*lead, -1)


class PretrainObjective(nn.Module):
    """Wraps a ``LoclipModel`` so ``forward(batch)`` returns ``(total_loss, {term: value})``.

    Batch keys (from ``loclip.pretrain.data``): ``pixel_values [B,3,S,S]``, ``input_ids``/``attention_mask
    [B,L]``, ``sub_input_ids``/``sub_attention_mask [B,K,L]``, ``sub_mask [B,K]``, ``boxes [B,M,4]``,
    ``box_mask [B,M]``, ``region_input_ids``/``region_attention_mask [B,M,L]``, ``has_regions [B]``.
    """

    def __init__(self, model: LoclipModel, loss: LossRecipe) -> None:
        super().__init__()
        self.model = model
        self.cfg = loss

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model, cfg = self.model, self.cfg
        vision = model.vision_model
        enc = vision.encode(batch["pixel_values"])
        text = model.get_text_features(batch["input_ids"], batch["attention_mask"])
        scale = model.logit_scale
        if cfg.contrastive == "siglip":
            terms = siglip_loss(enc.image_embeds, text, scale, model.logit_bias)
        else:
            terms = clip_loss(enc.image_embeds, text, scale, local_loss=cfg.local_loss)
        weights = {name: 1.0 for name in terms}

        if cfg.subcaptions or cfg.grouping_weight > 0:
            sub_mask = batch["sub_mask"]
            sub = _encode_rows(model, batch["sub_input_ids"], batch["sub_attention_mask"], sub_mask)
            if cfg.subcaptions:
                mp = multi_positive_loss(enc.image_embeds, sub, sub_mask, scale, local_loss=cfg.local_loss)
                terms.update(mp)
                weights.update({k: cfg.subcaption_weight for k in mp})
            if cfg.grouping_weight > 0:
                patches = vision.dense_features(enc).flatten(1, 2)  # [B, N, D]
                grp = grouping_loss(patches, sub, sub_mask, scale, cfg.grouping_delta, cfg.grouping_negatives)
                terms.update(grp)
                weights.update({k: cfg.grouping_weight for k in grp})

        if cfg.regions:
            box_mask, boxes = batch["box_mask"], batch["boxes"]
            phrases = _encode_rows(model, batch["region_input_ids"], batch["region_attention_mask"], box_mask)
            if cfg.region_method == "prompter":
                regions = vision.region_features(enc, boxes, box_mask)
            else:
                regions = vision.roi_features(enc, boxes, box_mask)
            lam = region_weight(batch["has_regions"], cfg.region_lambda)
            codes = None
            if cfg.text_filter_by == "exact":
                codes = caption_codes(batch["region_input_ids"], batch["region_attention_mask"])
            rt = region_text_loss(regions, phrases, box_mask, scale, cfg.text_filter, local_loss=cfg.local_loss,
                                  filter_embeds=codes)
            terms.update(rt)
            weights.update({k: lam for k in rt})
            if cfg.grounding:
                out = vision.grounding(enc, phrases)
                if out.cell_logits is None:
                    gr = grounding_loss(out.boxes, boxes, box_mask, kind=cfg.grounding_kind)
                else:
                    gr = dense_grounding_loss(out.cell_logits, out.cell_boxes, boxes, box_mask, enc.grid,
                                              kind=cfg.grounding_kind)
                terms.update(gr)
                weights.update({k: lam * cfg.grounding_weight for k in gr})

        total = sum(weights[k] * v for k, v in terms.items())
        return total, terms
