"""Batched inference under ``torch.no_grad()``: texts, captions, images, regions and grounded boxes.

Every embedding returned here is L2-normalised (the model's are not), so a dot product is a cosine.
Inputs go to the model's device; results come back on the CPU.

Long captions. The text tower reads at most ``text_context`` tokens. A caption that fits is embedded
whole. One that does not is, by default (``"subcaption"``), split into sentences (the same splitter
DreamLIP pretraining uses) and embedded as the renormalised mean of its normalised sentence embeddings;
with ``"truncate"`` it is cut to the context like CLIP does. A sentence longer than the context is
itself truncated in both modes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal, TypeVar, get_args

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from loclip.encoder import LoclipModel, LoclipProcessor
from loclip.encoder.choices import REGION_METHODS

from .data import ImageInput, RegionImage

LongCaptionMode = Literal["subcaption", "truncate"]
LongCaptions = Literal["subcaption", "truncate"]  # captions over the text context: sentence-averaged or cut
LONG_CAPTION_MODES: tuple[str, ...] = get_args(LongCaptions)
T = TypeVar("T")


def batches(items: Sequence[T], size: int, progress: bool = False, desc: str = "") -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of length ``size`` (the last may be shorter), with a tqdm bar."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    starts = range(0, len(items), size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        yield items[start : start + size]


def text_context(model: LoclipModel, processor: LoclipProcessor) -> int:
    """Tokens the text tower reads: the tokenizer's limit or the model's positions, whichever is smaller."""
    return int(min(processor.tokenizer.model_max_length, model.config.text_config.max_position_embeddings))


@torch.no_grad()
def embed_texts(
    model: LoclipModel,
    processor: LoclipProcessor,
    texts: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Normalised text embeddings ``[len(texts), D]``, each text truncated to ``text_context``."""
    context, out = text_context(model, processor), []
    for chunk in batches(texts, batch_size, progress, "texts"):
        enc = processor(text=list(chunk), padding=True, max_length=context).to(model.device)
        out.append(F.normalize(model.get_text_features(enc["input_ids"], enc["attention_mask"]), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.projection_dim)


def token_lengths(processor: LoclipProcessor, texts: Sequence[str]) -> list[int]:
    """Untruncated token counts, special tokens included."""
    ids = processor.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"] if texts else []
    return [len(x) for x in ids]


def embed_captions(
    model: LoclipModel,
    processor: LoclipProcessor,
    captions: Sequence[str],
    mode: LongCaptionMode = "subcaption",
    batch_size: int = 256,
    progress: bool = False,
) -> tuple[torch.Tensor, int]:
    """Caption embeddings ``[N, D]`` with long captions handled by ``mode`` (module docstring), and the
    number of captions longer than the context."""
    if mode not in LONG_CAPTION_MODES:
        raise ValueError(f"long_captions must be one of {LONG_CAPTION_MODES}, got {mode!r}")
    context = text_context(model, processor)
    overlong = [n > context for n in token_lengths(processor, captions)]
    if mode == "truncate" or not any(overlong):
        return embed_texts(model, processor, captions, batch_size, progress), sum(overlong)
    # pretrain.data pulls in webdataset, so import its splitter only when a caption needs splitting
    from loclip.core.sentences import split_sentences

    groups = [(split_sentences(c) or [c]) if long else [c] for c, long in zip(captions, overlong)]
    flat = embed_texts(model, processor, [s for g in groups for s in g], batch_size, progress)
    owner = torch.repeat_interleave(torch.arange(len(groups)), torch.tensor([len(g) for g in groups]))
    summed = torch.zeros(len(groups), flat.shape[1]).index_add_(0, owner, flat)
    return F.normalize(summed, dim=-1), sum(overlong)  # renormalised sum == renormalised mean


def classifier_weights(
    model: LoclipModel,
    processor: LoclipProcessor,
    classnames: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
    progress: bool = False,
) -> torch.Tensor:
    """Zero-shot classifier ``[C, D]``: per class, the renormalised mean over templates of the normalised
    embeddings of ``template.format(name)``."""
    if not classnames:
        raise ValueError("classnames is empty: nothing to classify into")
    return class_text_weights(model, processor, prompt_groups(classnames, templates), batch_size, progress)[0]


def prompt_groups(
    classnames: Sequence[str], templates: Sequence[str], class_prompts: Sequence[Sequence[Sequence[str]]] = ()
) -> list[list[list[str]]]:
    """Per class, its groups of prompts: ``class_prompts`` when given (``Dataset.class_prompts``), else one group
    ``[template.format(name) for template in templates]`` per class name."""
    if class_prompts:
        if len(class_prompts) != len(classnames):
            raise ValueError(f"class_prompts has {len(class_prompts)} entries for {len(classnames)} classes")
        return [[list(group) for group in groups] for groups in class_prompts]
    return [[[t.format(name) for t in templates]] for name in classnames]


def class_text_weights(
    model: LoclipModel,
    processor: LoclipProcessor,
    groups: Sequence[Sequence[Sequence[str]]],
    batch_size: int = 256,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every prompt group (renormalised mean of its normalised prompt embeddings) ``[G, D]`` and
    the class each group belongs to, long ``[G]``."""
    flat = [(c, g) for c, class_groups in enumerate(groups) for g in class_groups]
    if not flat or any(not g for _, g in flat):
        raise ValueError("every class needs at least one non-empty group of prompts")
    texts = [t for _, g in flat for t in g]
    emb = embed_texts(model, processor, texts, batch_size, progress).float()  # index_add_ needs one dtype (bf16)
    owner = torch.repeat_interleave(torch.arange(len(flat)), torch.tensor([len(g) for _, g in flat]))
    summed = torch.zeros(len(flat), emb.shape[1]).index_add_(0, owner, emb)
    return F.normalize(summed, dim=-1), torch.tensor([c for c, _ in flat])


def class_scores(features: torch.Tensor, weights: torch.Tensor, owner: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Cosine of normalised ``features [..., D]`` with every group ``weights [G, D]``, each class taking its best
    group (``owner [G]``: the group's class) → ``[..., num_classes]``."""
    sims = features.float() @ weights.float().to(features.device).t()  # a bf16 model's features, float32 weights
    out = sims.new_full((*sims.shape[:-1], num_classes), float("-inf"))
    return out.scatter_reduce(-1, owner.to(sims.device).expand_as(sims), sims, reduce="amax", include_self=True)


@torch.no_grad()
def embed_images(
    model: LoclipModel,
    processor: LoclipProcessor,
    images: Sequence[ImageInput],
    batch_size: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """Normalised image embeddings ``[len(images), D]`` (trunk + projection only)."""
    out = []
    for chunk in batches(images, batch_size, progress, "images"):
        pixels = processor(images=list(chunk))["pixel_values"].to(model.device)
        out.append(F.normalize(model.get_image_features(pixels), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.projection_dim)


def _region_inputs(processor: LoclipProcessor, chunk: Sequence[RegionImage], device: torch.device) -> dict:
    # clip_boxes: a benchmark's boxes are clipped to the decoded image whatever they overshoot it by (the size a
    # file states may not be the decoded one's); the one box rule alone would refuse past 1 px and stop the run
    boxes = [[r.box for r in item.regions] for item in chunk]
    return processor(images=[item.image for item in chunk], boxes=boxes, clip_boxes=True).to(device)


@torch.no_grad()
def embed_patches(
    model: LoclipModel,
    processor: LoclipProcessor,
    images: Sequence[ImageInput],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised patch embeddings ``[B, h, w, D]`` (``get_patch_features``) of one batch of images, and their
    ``original_sizes`` ``[B, 2]`` (height, width)."""
    inputs = processor(images=list(images))
    patches = model.get_patch_features(inputs["pixel_values"].to(model.device))
    return F.normalize(patches, dim=-1).cpu(), inputs["original_sizes"].cpu()


@torch.no_grad()
def embed_regions(
    model: LoclipModel,
    processor: LoclipProcessor,
    items: Sequence[RegionImage],
    method: str = "prompter",
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Normalised region embeddings ``[sum of regions, D]``, in image order then region order.

    ``method``: ``"prompter"`` (CLOC) or ``"roialign"`` (baseline); one trunk pass per image either way.
    """
    if method not in REGION_METHODS:
        raise ValueError(f"region_method must be one of {REGION_METHODS}, got {method!r}")
    vision, out = model.vision_model, []
    for chunk in batches(items, batch_size, progress, "regions"):
        inputs = _region_inputs(processor, chunk, model.device)
        enc = vision.encode(inputs["pixel_values"])
        fn = vision.region_features if method == "prompter" else vision.roi_features
        out.append(F.normalize(fn(enc, inputs["boxes"], inputs["box_mask"])[inputs["box_mask"]], dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.projection_dim)


@torch.no_grad()
def ground_phrases(
    model: LoclipModel,
    processor: LoclipProcessor,
    items: Sequence[RegionImage],
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box head's box for every (region, phrase) pair, and the region's box: both ``[Q, 4]`` pixel xyxy
    of the original image, in image, region, phrase order.

    Predictions go back to pixels through ``processor.post_process_boxes``; all of an image's phrases
    share one trunk pass (each phrase prompt attends to the patches and itself only, so zero-padded
    phrase slots change nothing and are dropped).
    """
    preds, targets = [], []
    for chunk in batches(items, batch_size, progress, "grounding"):
        inputs = processor(images=[item.image for item in chunk]).to(model.device)
        enc = model.vision_model.encode(inputs["pixel_values"])
        queries = [[(p, r.box) for r in item.regions for p in r.phrases] for item in chunk]
        counts = [len(q) for q in queries]
        phrase_emb = embed_texts(model, processor, [p for q in queries for p, _ in q], batch_size=256)
        padded = torch.zeros(len(chunk), max(counts, default=0), phrase_emb.shape[1])
        mask = torch.arange(padded.shape[1])[None] < torch.tensor(counts)[:, None]
        padded[mask] = phrase_emb
        boxes = model.vision_model.grounding(enc, padded.to(model.device)).boxes
        preds += processor.post_process_boxes(boxes.cpu(), inputs["original_sizes"].cpu(), box_mask=mask)
        targets += [torch.tensor([box for _, box in q], dtype=torch.float32).reshape(-1, 4) for q in queries]
    empty = torch.zeros(0, 4)
    return (torch.cat(preds) if preds else empty), (torch.cat(targets) if targets else empty)
