"""``DataConfig``: every knob of the pretraining data pipeline, checked where it enters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FILL_MODES = ("mask", "repeat")
CAPTION_SOURCES = ("raw", "short", "long", "pool")


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"DataConfig.{name} must be an int >= {low}, got {value!r}")


def _check_paths(name: str, value: object) -> None:
    ok = value is None or isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    )
    if not ok:
        raise ValueError(f"DataConfig.{name} must be a string, a list of strings or None, got {value!r}")


@dataclass
class DataConfig:
    """The training data recipe (one rank's view; ``batch_size`` is per rank).

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
    short caption, ``"long"`` a random long-caption sentence, ``"pool"`` a random pool entry (the last three
    fall back to the raw caption when they have nothing to draw from).
    ``num_regions`` (M) CLOC regions per image per step, drawn from the image's valid regions.
    Boxes may reach ``box_tolerance`` pixels outside their image before they count as bad; they are clipped.
    ``image_size``: the square model-input side; the processor given to the loader must letterbox to it.
    All random draws derive from ``seed``, the epoch and the sample key, so a resumed run draws the same.
    """

    train_shards: str | list[str] | None = None
    jsonl: str | list[str] | None = None
    image_root: str | None = None
    batch_size: int = 32
    num_workers: int = 4
    image_size: int = 224
    max_text_length: int = 77
    num_subcaptions: int = 4
    num_regions: int = 4
    pool_raw_caption: bool = True
    pool_short_captions: bool = True
    pool_long_sentences: bool = True
    fill_mode: Literal["mask", "repeat"] = "mask"
    caption_source: Literal["raw", "short", "long", "pool"] = "raw"
    seed: int = 0
    jsonl_chunk_size: int = 1000
    box_tolerance: float = 1.0
    prefetch_factor: int = 2
    pin_memory: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (recipes may set fields after construction, so
        the loader builder calls this again). Whether any source is set is checked when building."""
        _check_paths("train_shards", self.train_shards)
        _check_paths("jsonl", self.jsonl)
        if self.image_root is not None and not isinstance(self.image_root, str):
            raise ValueError(f"DataConfig.image_root must be a string or None, got {self.image_root!r}")
        for name, low in (("batch_size", 1), ("num_workers", 0), ("image_size", 1), ("max_text_length", 2),
                          ("num_subcaptions", 0), ("num_regions", 0), ("seed", 0), ("jsonl_chunk_size", 1),
                          ("prefetch_factor", 1)):
            _check_int(name, getattr(self, name), low)
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"DataConfig.fill_mode must be one of {FILL_MODES}, got {self.fill_mode!r}")
        if self.caption_source not in CAPTION_SOURCES:
            raise ValueError(f"DataConfig.caption_source must be one of {CAPTION_SOURCES}, got {self.caption_source!r}")
        if isinstance(self.box_tolerance, bool) or not isinstance(self.box_tolerance, (int, float)) or not (
            0 <= self.box_tolerance < float("inf")
        ):
            raise ValueError(f"DataConfig.box_tolerance must be a finite number >= 0, got {self.box_tolerance!r}")
