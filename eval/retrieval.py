"""Image–text retrieval R@K both ways, with several captions per image.

An image query is right at K if ANY of its captions is among the K best captions; a caption query has
one image. Captions with identical text (after case and whitespace folding) are one query string, so by
default (``match_identical=True``) every image owning that text counts as a positive for it, and all
copies count as positives for each such image; the synthetic world, where many scenes share a short
caption, needs this. ``match_identical=False`` is the strict protocol: only the caption's own image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loclip.encoder import LoclipModel, LoclipProcessor

from .data import CaptionedImage, Dataset
from .embed import LongCaptionMode, embed_captions, embed_images
from .metrics import positive_rank, recall_from_ranks
from .report import TaskResult

KS: tuple[int, ...] = (1, 5, 10)
_CHUNK = 1024  # queries per similarity block: bounds memory to [chunk, candidates]


def caption_key(text: str) -> str:
    """What makes two captions "identical": the same words, case and whitespace folded."""
    return " ".join(text.lower().split())


def caption_incidence(
    captions: Sequence[Sequence[str]], match_identical: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which image owns which caption.

    captions: per image, its captions (flattened in this order to ``N_cap`` captions).
    Returns ``owns`` bool ``[N_img, K]`` over caption keys and ``key`` long ``[N_cap]``: caption j is a
    positive for image i iff ``owns[i, key[j]]``. Without ``match_identical`` every caption is its own key.
    """
    keys: dict[str, int] = {}
    flat = [c for group in captions for c in group]
    key = torch.tensor(
        [keys.setdefault(caption_key(c) if match_identical else str(j), len(keys)) for j, c in enumerate(flat)],
        dtype=torch.long,
    )
    owner = torch.repeat_interleave(torch.arange(len(captions)), torch.tensor([len(g) for g in captions]))
    owns = torch.zeros(len(captions), len(keys), dtype=torch.bool)
    owns[owner, key] = True
    return owns, key


def retrieval_metrics(
    item_emb: torch.Tensor,
    text_emb: torch.Tensor,
    owns: torch.Tensor,
    key: torch.Tensor,
    names: tuple[str, str] = ("i2t", "t2i"),
    ks: tuple[int, ...] = KS,
) -> dict[str, float]:
    """R@K item → text and text → item. item_emb ``[N, D]`` and text_emb ``[M, D]`` normalised; ``owns``/``key``
    from ``caption_incidence``. Keys ``{names[0]}_R@k`` and ``{names[1]}_R@k``."""
    forward, backward = [], []
    for start in range(0, len(item_emb), _CHUNK):
        rows = slice(start, start + _CHUNK)
        forward.append(positive_rank(item_emb[rows] @ text_emb.t(), owns[rows][:, key]))
    for start in range(0, len(text_emb), _CHUNK):
        rows = slice(start, start + _CHUNK)
        backward.append(positive_rank(text_emb[rows] @ item_emb.t(), owns[:, key[rows]].t()))
    out = {}
    for name, ranks in zip(names, (forward, backward)):
        out.update({f"{name}_R@{k}": v for k, v in recall_from_ranks(torch.cat(ranks), ks).items()})
    return out


def evaluate_retrieval(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[CaptionedImage],
    long_captions: LongCaptionMode = "subcaption",
    match_identical: bool = True,
    batch_size: int = 64,
    progress: bool = False,
    image_emb: torch.Tensor | None = None,
) -> TaskResult:
    """Retrieval over the whole dataset (module docstring); ``image_emb`` ``[N, D]`` reuses embeddings already
    computed for these images."""
    data.require_items("captioned images")
    captions = [item.captions for item in data.items]
    owns, key = caption_incidence(captions, match_identical)
    if image_emb is None:
        image_emb = embed_images(model, processor, [item.image for item in data.items], batch_size, progress)
    text_emb, overlong = embed_captions(
        model, processor, [c for g in captions for c in g], long_captions, progress=progress
    )
    info = {
        "num_images": len(data),
        "num_captions": len(key),
        "num_overlong_captions": overlong,
        "long_captions": long_captions,
        "match_identical": match_identical,
        "skipped": data.skipped,
    }
    return TaskResult("retrieval", data.name, retrieval_metrics(image_emb, text_emb, owns, key), info)
