"""The pretraining objective: one module the DeepSpeed engine wraps, batch in, (loss, named terms) out.

It runs the vision trunk once, the text tower once on the captions and the valid sub-caption and
region-phrase rows (each distinct text once, trailing padding dropped where that changes nothing), then
the loss terms the recipe turns on.
"""

from __future__ import annotations

import torch
from torch import nn

from loclip.encoder import LoclipModel
from loclip.encoder.trunks import TEXT_TOWERS

from .config import LossRecipe
from .losses import (
    clip_loss,
    grouping_loss,
    multi_positive_loss,
    region_text_loss,
    region_weight,
    siglip_loss,
)

_HASHES = ((2_147_483_647, 131_071), (2_147_483_629, 524_287))  # (prime modulus, base) of two rolling hashes


def caption_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """An exact identity of each token sequence ``[..., L]`` → int64 ``[...]``: the unmasked tokens (and where
    the mask ends) through two polynomial hashes modulo primes below 2^31, joined into 62 bits. Equal
    sequences get equal ids on every rank; two different captions of a batch share one with a probability
    of about 1e-18. Integer arithmetic throughout (a float code of the ids loses the last digits)."""
    tokens = (input_ids.long() + 1) * attention_mask.long()  # 0 = padding, so the length counts too
    parts = []
    for modulus, base in _HASHES:
        h = torch.zeros(tokens.shape[:-1], dtype=torch.long, device=tokens.device)
        for column in tokens.unbind(-1):  # values stay below 2^31 * 2^19: no int64 overflow
            h = (h * base + column) % modulus
        parts.append(h)
    return parts[0] * (1 << 31) + parts[1]


def _encode_text(model: LoclipModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``get_text_features`` of ``[n, L]`` rows, without the trailing padding columns when the text tower
    allows it (``TextTowerSpec.trim_padding``: the outputs are the same).

    Why: batches are padded to ``max_text_length`` and sub-captions and region phrases are much shorter, so
    padding would otherwise be most of the text tower's work. Rows are also split into a short and a long
    group (two calls, each trimmed to its own longest row) when that saves over 20 % of the tokens, as when
    short region phrases and long sentences are encoded together.
    """
    if not TEXT_TOWERS[model.config.text_config.model_type].trim_padding or ids.shape[0] == 0:
        return model.get_text_features(ids, mask)
    used = mask.to(torch.bool)
    length = ids.shape[1]
    lengths = torch.where(used.any(dim=1), length - used.flip(1).int().argmax(dim=1), 1)  # last used column + 1
    order = lengths.argsort()
    ranked = lengths[order].tolist()
    n, longest = len(ranked), ranked[-1]
    # tokens when the i shortest rows go in one call and the rest in another
    costs = [i * ranked[i - 1] + (n - i) * longest for i in range(1, n)]
    split = min(range(len(costs)), key=costs.__getitem__) + 1 if costs else n
    if split == n or costs[split - 1] > 0.8 * n * longest:
        return model.get_text_features(ids[:, :longest], mask[:, :longest])
    short, long = order[:split], order[split:]
    emb = torch.cat(
        [
            model.get_text_features(ids[short, : ranked[split - 1]], mask[short, : ranked[split - 1]]),
            model.get_text_features(ids[long, :longest], mask[long, :longest]),
        ]
    )
    return emb[order.argsort()]


def _encode_texts(model: LoclipModel, parts: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Text embeddings of several groups of ``[n_i, L]`` rows (ids, mask) in one text-tower call → ``[n_i, D]``.

    Identical rows (same ids and mask) are encoded once and share the result, which equals encoding them
    apart (their gradients add up the same way). Why: the raw caption is also in the sub-caption pool and
    region phrases repeat across a batch, so without this the tower would redo that work every step.
    """
    names = list(parts)
    ids = torch.cat([parts[n][0] for n in names])
    mask = torch.cat([parts[n][1] for n in names]).to(ids.dtype)
    unique, inverse = torch.unique(torch.cat([ids, mask], dim=1), dim=0, return_inverse=True)
    length = ids.shape[1]
    emb = _encode_text(model, unique[:, :length], unique[:, length:])[inverse]
    return dict(zip(names, emb.split([parts[n][0].shape[0] for n in names])))


def _place(rows: torch.Tensor, valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Scatter ``rows [n, D]`` into the ``n`` True slots of ``valid [...]``; zeros elsewhere → ``[..., D]``."""
    out = rows.new_zeros(valid.numel(), rows.shape[-1], dtype=dtype)
    out = out.index_put((valid.reshape(-1).nonzero()[:, 0],), rows.to(dtype))
    return out.reshape(*valid.shape, -1)


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
        need_sub = cfg.subcaptions or cfg.grouping_weight > 0
        texts = {"caption": (batch["input_ids"], batch["attention_mask"])}
        if need_sub:
            valid = batch["sub_mask"].to(torch.bool)
            texts["sub"] = (batch["sub_input_ids"][valid], batch["sub_attention_mask"][valid])
        if cfg.regions:
            valid = batch["box_mask"].to(torch.bool)
            texts["region"] = (batch["region_input_ids"][valid], batch["region_attention_mask"][valid])
        embedded = _encode_texts(model, texts)
        text = embedded["caption"]
        scale = model.logit_scale
        if cfg.contrastive == "siglip":
            terms = siglip_loss(enc.image_embeds, text, scale, model.logit_bias)
        else:
            terms = clip_loss(enc.image_embeds, text, scale, local_loss=cfg.local_loss)
        weights = {name: 1.0 for name in terms}

        if need_sub:
            sub_mask = batch["sub_mask"]
            sub = _place(embedded["sub"], sub_mask.to(torch.bool), model.dtype)
            if cfg.subcaptions:
                ids = None
                if cfg.subcaption_filter == "exact":
                    ids = caption_ids(batch["sub_input_ids"], batch["sub_attention_mask"])
                mp = multi_positive_loss(
                    enc.image_embeds, sub, sub_mask, scale, local_loss=cfg.local_loss, filter_ids=ids
                )
                terms.update(mp)
                weights.update({k: cfg.subcaption_weight for k in mp})
            if cfg.grouping_weight > 0:
                patches = vision.dense_features(enc).flatten(1, 2)  # [B, N, D]
                texts_for_groups = sub if cfg.grouping_text_grad else sub.detach()
                grp = grouping_loss(
                    patches, texts_for_groups, sub_mask, scale, cfg.grouping_delta, cfg.grouping_negatives
                )
                terms.update(grp)
                weights.update({k: cfg.grouping_weight for k in grp})

        if cfg.regions:
            box_mask, boxes = batch["box_mask"], batch["boxes"]
            phrases = _place(embedded["region"], box_mask.to(torch.bool), model.dtype)
            if cfg.region_method == "prompter":
                regions = vision.region_features(enc, boxes, box_mask)
            else:
                regions = vision.roi_features(enc, boxes, box_mask)
            lam = region_weight(batch["has_regions"], cfg.region_lambda)
            codes = None
            if cfg.text_filter_by == "exact":
                codes = caption_ids(batch["region_input_ids"], batch["region_attention_mask"])
            rt = region_text_loss(
                regions, phrases, box_mask, scale, cfg.text_filter, local_loss=cfg.local_loss, filter_ids=codes
            )
            terms.update(rt)
            weights.update({k: lam for k in rt})
            if cfg.grounding:
                out = vision.grounding(enc, phrases)
                gr = vision.box_head.loss(out, boxes, box_mask, kind=cfg.grounding_kind)
                terms.update(gr)
                weights.update({k: lam * cfg.grounding_weight for k in gr})

        total = sum(weights[k] * v for k, v in terms.items())
        return total, terms
