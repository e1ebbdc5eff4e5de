"""Per-step draws for one sample: DreamLIP sub-captions, CLOC regions and the image-level caption.

Every draw uses a generator seeded by ``(seed, epoch, sample key, purpose)`` alone, so the same sample in
the same epoch gets the same draws whichever worker or rank reads it, and a resumed run repeats them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image

from loclip.core.sentences import split_sentences

from .config import DataConfig
from .sample import Sample

T = TypeVar("T")

# Purposes: independent streams so that, e.g., changing K does not change which regions are drawn.
SUBCAPTIONS, REGIONS, CAPTION = 1, 2, 3


def sample_rng(seed: int, epoch: int, key: str, purpose: int) -> np.random.Generator:
    """A generator determined by its arguments only (``hash()`` is salted per process, so not that)."""
    key_hash = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, epoch, key_hash, purpose])


def subcaption_pool(sample: Sample, config: DataConfig) -> list[str]:
    """The texts sub-captions are drawn from, de-duplicated, in order: raw caption, short captions,
    sentences of each long caption (each source switchable in ``config``)."""
    pool: list[str] = []
    if config.pool_raw_caption:
        pool.append(sample.caption)
    if config.pool_short_captions:
        pool.extend(sample.short_captions)
    if config.pool_long_sentences:
        for text in sample.long_captions:
            pool.extend(split_sentences(text))
    return list(dict.fromkeys(pool))  # a repeated text is one positive, not two


def choose(pool: Sequence[T], k: int, rng: np.random.Generator, repeat: bool = False) -> tuple[list[T], list[bool]]:
    """Up to ``k`` items of ``pool`` without replacement, in random order, and a ``k``-long validity mask.

    With fewer than ``k`` items all are taken (the list is shorter than ``k``; the mask is ``False`` for
    the missing slots). ``repeat=True`` instead cycles through the drawn order to fill all ``k`` slots.
    An empty pool gives no items and an all-``False`` mask either way.
    """
    order = rng.permutation(len(pool))[:k].tolist()
    if repeat and order:
        order = [order[i % len(order)] for i in range(k)]
    return [pool[i] for i in order], [i < len(order) for i in range(k)]


@dataclass
class TrainItem:
    """One sample's inputs for one step, before tokenisation and letterboxing.

    ``subcaptions``/``sub_mask`` have K entries (masked ones are ``""``); ``boxes``/``phrases`` hold up to M
    drawn regions (pixel xyxy); ``has_regions``: the image has at least one valid region.
    """

    key: str
    image: Image.Image  # RGB
    caption: str
    subcaptions: list[str]
    sub_mask: list[bool]
    boxes: list[tuple[float, float, float, float]]
    phrases: list[str]
    has_regions: bool


def prepare(sample: Sample, epoch: int, config: DataConfig) -> TrainItem:
    """Draw the step's sub-captions, regions and caption for ``sample`` in ``epoch``."""
    pool = subcaption_pool(sample, config)
    sub_rng = sample_rng(config.seed, epoch, sample.key, SUBCAPTIONS)
    subs, sub_mask = choose(pool, config.num_subcaptions, sub_rng, repeat=config.fill_mode == "repeat")
    regions, _ = choose(sample.regions, config.num_regions, sample_rng(config.seed, epoch, sample.key, REGIONS))
    return TrainItem(
        key=sample.key,
        image=sample.image,
        caption=_caption(sample, pool, epoch, config),
        subcaptions=subs + [""] * (config.num_subcaptions - len(subs)),
        sub_mask=sub_mask,
        boxes=[r.box for r in regions],
        phrases=[r.phrase for r in regions],
        has_regions=bool(sample.regions),
    )


def _caption(sample: Sample, pool: list[str], epoch: int, config: DataConfig) -> str:
    if config.caption_source == "short":
        candidates = sample.short_captions
    elif config.caption_source == "long":
        candidates = [s for text in sample.long_captions for s in split_sentences(text)]
    elif config.caption_source == "long_full":
        candidates = sample.long_captions
    elif config.caption_source == "pool":
        candidates = pool
    else:
        candidates = []
    if not candidates:
        return sample.caption
    rng = sample_rng(config.seed, epoch, sample.key, CAPTION)
    return candidates[int(rng.integers(len(candidates)))]
