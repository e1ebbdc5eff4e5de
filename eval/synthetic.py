"""Held-out evaluation of an encoder on the synthetic world.

Region classification: each ground-truth box, embedded by the prompter (or RoIAlign), is classified
among every phrase the world can say ("small red circle", …: sizes × colours × shapes).
Grounding: the box head's box for each phrase that names one object alone, IoU >= 0.5.
Retrieval: image ↔ caption R@1, both directions averaged; identical captions all count as positives.
Long captions exceed the text context, so a long caption's embedding is the mean of its sentences'
normalised embeddings (sub-caption averaging).
"""

from __future__ import annotations

import re
from itertools import islice, product

import torch
import torch.nn.functional as F

from loclip.encoder import LoclipModel
from loclip.encoder.processing import LoclipProcessor
from loclip.pretrain.synth import COLOURS, SHAPES, SIZES, read_split

from .metrics import iou_accuracy, recall_at_k, top1_accuracy

ALL_PHRASES: tuple[str, ...] = tuple(f"{s} {c} {h}" for s, c, h in product(SIZES, COLOURS, SHAPES))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


@torch.no_grad()
def embed_texts(model: LoclipModel, processor: LoclipProcessor, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised text embeddings ``[len(texts), D]``."""
    out = []
    for i in range(0, len(texts), batch_size):
        enc = processor(text=texts[i : i + batch_size], return_tensors="pt")
        out.append(F.normalize(model.get_text_features(enc["input_ids"], enc["attention_mask"]), dim=-1))
    return torch.cat(out) if out else torch.zeros(0, model.config.projection_dim)


@torch.no_grad()
def evaluate_split(
    model: LoclipModel,
    processor: LoclipProcessor,
    synth_dir: str,
    split: str,
    max_scenes: int = 200,
    batch_size: int = 64,
    region_method: str = "prompter",
) -> dict[str, float]:
    """Metrics on one split: region_acc, grounding_acc50, retrieval_r1, long_retrieval_r1."""
    model.eval()
    records = list(islice(read_split(synth_dir, split), max_scenes))
    label_emb = embed_texts(model, processor, list(ALL_PHRASES))
    label_index = {p: i for i, p in enumerate(ALL_PHRASES)}
    region_scores, region_targets, ground_pred, ground_true, image_emb = [], [], [], [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        regions = [[r["bbox"] for r in rec.meta["regions"]] for rec in chunk]
        inputs = processor(images=[rec.image for rec in chunk], boxes=regions, return_tensors="pt")
        enc = model.vision_model.encode(inputs["pixel_values"])
        image_emb.append(F.normalize(enc.image_embeds, dim=-1))
        fn = model.vision_model.region_features if region_method == "prompter" else model.vision_model.roi_features
        reg = F.normalize(fn(enc, inputs["boxes"], inputs["box_mask"]), dim=-1)
        for b, rec in enumerate(chunk):
            phrases = [r["phrase"] for r in rec.meta["regions"]]
            region_scores.append(reg[b, : len(phrases)] @ label_emb.t())
            region_targets += [label_index[p] for p in phrases]
        # grounding: phrases naming exactly one object in the scene
        for b, rec in enumerate(chunk):
            phrases = [r["phrase"] for r in rec.meta["regions"]]
            unique = [i for i, p in enumerate(phrases) if phrases.count(p) == 1]
            if not unique:
                continue
            sub = type(enc)(enc.image_embeds[b : b + 1], enc.patch_tokens[b : b + 1], enc.grid, enc.trunk_output)
            phrase_emb = embed_texts(model, processor, [phrases[i] for i in unique])
            boxes, _ = model.vision_model.ground_features(sub, phrase_emb[None])
            ground_pred.append(boxes[0])
            ground_true.append(inputs["boxes"][b, unique])
    metrics = {
        "region_acc": top1_accuracy(torch.cat(region_scores), torch.tensor(region_targets)),
        "grounding_acc50": iou_accuracy(torch.cat(ground_pred), torch.cat(ground_true)) if ground_pred else float("nan"),
    }
    images = torch.cat(image_emb)
    for name, texts in (("retrieval_r1", [rec.meta["caption"] for rec in records]),
                        ("long_retrieval_r1", [rec.meta["long_captions"][0] for rec in records])):
        text_emb = embed_long(model, processor, texts) if name.startswith("long") else embed_texts(model, processor, texts)
        same = torch.tensor([[a == b for b in texts] for a in texts])
        sim = images @ text_emb.t()
        metrics[name] = (recall_at_k(sim, same, (1,))[1] + recall_at_k(sim.t(), same.t(), (1,))[1]) / 2
    return metrics


def embed_long(model: LoclipModel, processor: LoclipProcessor, texts: list[str]) -> torch.Tensor:
    """Sub-caption averaging: mean of the normalised sentence embeddings, renormalised. ``[N, D]``."""
    sentences = [_sentences(t) or [t] for t in texts]
    flat = embed_texts(model, processor, [s for group in sentences for s in group])
    out, i = [], 0
    for group in sentences:
        out.append(F.normalize(flat[i : i + len(group)].mean(0), dim=-1))
        i += len(group)
    return torch.stack(out)


def evaluate_synthetic(
    model: LoclipModel, processor: LoclipProcessor, synth_dir: str, max_scenes: int = 200, region_method: str = "prompter"
) -> dict[str, float]:
    """val metrics plus region accuracy on the composition split (``region_acc_novel``)."""
    metrics = evaluate_split(model, processor, synth_dir, "val", max_scenes, region_method=region_method)
    novel = evaluate_split(model, processor, synth_dir, "novel", max_scenes, region_method=region_method)
    metrics["region_acc_novel"] = novel["region_acc"]
    return metrics
