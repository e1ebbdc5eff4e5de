"""``DataConfig``: every knob of the pretraining data pipeline, checked once, when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from loclip.core.image_loading import DEFAULT_MAX_PIXELS
from loclip.core.recipe import CheckedConfig, NonNegativeFloat, NonNegativeInt, PositiveInt, at_least
from loclip.encoder.boxes import EDGE_TOLERANCE
from loclip.shards.read import DEFAULT_MAX_MEMBER_BYTES

FillMode = Literal["mask", "repeat"]
CaptionSource = Literal["raw", "short", "long", "long_full", "pool"]
FILL_MODES: tuple[str, ...] = get_args(FillMode)
CAPTION_SOURCES: tuple[str, ...] = get_args(CaptionSource)


@dataclass
class DataConfig(CheckedConfig):
    """The training data recipe (one rank's view; ``batch_size`` is per rank), checked when it is built (by
    ``load_recipe`` or in Python: a ``ValueError`` naming ``data.<field>``, its value and what is expected).

    Sources (at least one): ``train_shards``: webdataset tar shards as paths, brace patterns
    (``shards/train-{000000..000009}.tar``), globs, a directory of ``*.tar``, ``pipe:...`` commands (object
    storage: ``pipe:aws s3 cp s3://bucket/train-{000000..000099}.tar -``) or URLs that ``webdataset.gopen``
    opens (http/https), or a list of those. ``jsonl``: JSONL file(s), one sample per line
    (``{"image": "rel/path.jpg", "caption": ...}``), images relative to ``image_root`` or else to the JSONL's
    folder; each file is cut into chunks of ``jsonl_chunk_size`` lines that are ordered and shared out like shards.

    Text: every text is padded and truncated to ``max_text_length`` tokens so batch shapes are static.
    ``num_subcaptions`` (K) DreamLIP sub-captions are drawn per image per step from a pool of the raw caption
    (``pool_raw_caption``), the ``short_captions`` (``pool_short_captions``) and the sentences of every long
    caption (``pool_long_sentences``). With fewer than K in the pool, ``fill_mode="mask"`` takes them all and
    masks the rest; ``"repeat"`` repeats them (in their sampled order) to fill all K slots.
    ``caption_source`` picks the image-level caption: ``"raw"`` the ``caption`` field, ``"short"`` a random
    short caption, ``"long"`` a random long-caption sentence, ``"long_full"`` a random whole long caption
    (cut at ``max_text_length`` tokens like any text: CLIP trained on long captions), ``"pool"`` a random pool
    entry (all but ``"raw"`` fall back to the raw caption when they have nothing to draw from).
    ``num_regions`` (M) CLOC regions per image per step, drawn from the image's valid regions.
    Boxes may reach ``box_tolerance`` pixels outside their image before they count as bad; they are clipped (the
    one box rule, ``loclip.encoder.boxes.check_pixel_box``, whose ``EDGE_TOLERANCE`` is the default).
    An image whose header says more than ``max_image_pixels`` (width x height) is skipped before decoding; a
    shard member (image, JSON, anything) over ``max_member_bytes`` by its tar header is skipped before it is read
    (64 MiB by default, ``loclip.shards.read.DEFAULT_MAX_MEMBER_BYTES``: a reader's memory stays bounded
    whatever a shard holds; raise it for shards of very large PNGs).
    ``image_size``: the square model-input side; the processor given to the loader must letterbox to it.
    All random draws derive from ``seed``, the epoch and the sample key, so a resumed run draws the same.
    """

    train_shards: str | list[str] | None = None
    jsonl: str | list[str] | None = None
    image_root: str | None = None
    batch_size: PositiveInt = 32
    num_workers: NonNegativeInt = 4
    image_size: PositiveInt = 224
    max_text_length: Annotated[int, at_least(2)] = 77
    num_subcaptions: NonNegativeInt = 4
    num_regions: NonNegativeInt = 4
    pool_raw_caption: bool = True
    pool_short_captions: bool = True
    pool_long_sentences: bool = True
    fill_mode: FillMode = "mask"
    caption_source: CaptionSource = "raw"
    seed: NonNegativeInt = 0
    jsonl_chunk_size: PositiveInt = 1000
    box_tolerance: NonNegativeFloat = EDGE_TOLERANCE
    max_image_pixels: PositiveInt = DEFAULT_MAX_PIXELS
    max_member_bytes: PositiveInt = DEFAULT_MAX_MEMBER_BYTES
    prefetch_factor: PositiveInt = 2
    pin_memory: bool = False

    FIELD_PREFIX = "data."  # errors name data.batch_size, as the recipe and its flags do
