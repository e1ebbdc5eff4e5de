"""What the readers produce and the tasks consume: small frozen records, boxes in original-image pixels.

Readers (``coco``, ``refcoco``, ``folder``, ``synth_data``) turn files into a ``Dataset`` of one item type;
tasks never read files themselves. Images stay file paths until a batch is processed, so a
dataset of thousands of images costs no memory up front.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar, Union

from PIL import Image

from loclip.core.image_loading import ImageRefused, resolve_image_path
from loclip.core.messages import shown
from loclip.shards.skips import SkipCounter

ImageInput = Union[str, "os.PathLike[str]", Image.Image]
Box = tuple[float, float, float, float]  # pixel xyxy of the original image


@dataclass(frozen=True)
class LabelledImage:
    """One image and its class index (zero-shot classification)."""

    image: ImageInput
    label: int


@dataclass(frozen=True)
class CaptionedImage:
    """One image and all of its captions (COCO has five); each caption belongs to this image only."""

    image: ImageInput
    captions: tuple[str, ...]


@dataclass(frozen=True)
class Region:
    """A box in original-image pixels (xyxy) with a class index (``-1``: none) and the phrases that name it."""

    box: Box
    label: int = -1
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegionImage:
    """One image and its regions."""

    image: ImageInput
    regions: tuple[Region, ...]


@dataclass(frozen=True)
class MultiLabelImage:
    """One image and the indices of every class present in it (multi-label classification)."""

    image: ImageInput
    labels: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class SegmentedImage:
    """One image and its per-pixel class map: an integer array ``[H, W]`` of the image's size, or the path of a
    PNG holding it (read when the item is scored). Values index the dataset's classes; see ``read_masks``."""

    image: ImageInput
    mask: Any


ItemT = TypeVar("ItemT", LabelledImage, CaptionedImage, RegionImage, MultiLabelImage, SegmentedImage)
PromptGroups = tuple[tuple[tuple[str, ...], ...], ...]


@dataclass
class Dataset(Generic[ItemT]):
    """A named list of items, the class names their labels index, and what the reader skipped (by reason).

    ``class_prompts``, when given, replaces "template × class name" for the tasks that score classes by text
    (``embed.class_scores``): per class, groups of whole prompts; a group's embeddings are averaged (a template
    ensemble) and a class scores as its best group (synonyms, e.g. several kinds of background).
    ``ignore_index``: the mask value that marks unlabelled pixels (segmentation).
    """

    name: str
    items: list[ItemT]
    classnames: tuple[str, ...] = ()
    skipped: dict[str, int] = field(default_factory=dict)
    class_prompts: PromptGroups = ()
    ignore_index: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def head(self, max_items: int | None) -> Dataset[ItemT]:
        """The first ``max_items`` items (all when ``None``)."""
        return self if max_items is None else replace(self, items=self.items[:max_items])

    def require_items(self, what: str) -> Dataset[ItemT]:
        """``ValueError`` naming the dataset when it holds no ``what`` (nothing to evaluate)."""
        if not self.items:
            skipped = f" (skipped: {self.skipped})" if self.skipped else ""
            raise ValueError(f"dataset {self.name!r} has no {what} to evaluate{skipped}")
        return self


def say_first_skip(reason: str, detail: str) -> None:
    """Eval's readers say the first skip of each reason on stderr (never silent); the counts are reported."""
    print(f"loclip-eval: skipping {reason} (first: {detail}); counts are reported", file=sys.stderr)


def skip_counter() -> SkipCounter:
    """The counter of what a reader skipped, by reason (``loclip.shards.skips``), saying each reason's first."""
    return SkipCounter(on_first=say_first_skip)


def check_dir(path: str | os.PathLike, field_name: str) -> Path:
    """``path`` as a ``Path``, or ``ValueError`` naming the field when it is not an existing directory."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{field_name}: no such directory {str(path)!r}")
    return p


def find_image(image_dir: Path, file_name: Any, skips: SkipCounter, name: str = "image") -> Path | None:
    """``image_dir/file_name`` if it is a regular file inside ``image_dir`` (``resolve_image_path``); a missing
    one is counted as a ``missing_image`` skip (None); one that leaves the folder (``/etc/passwd.png``,
    ``../x.png``, a link out) or is no regular file is refused: ``ValueError`` naming ``name`` and the path."""
    try:
        return resolve_image_path(image_dir, file_name, name)
    except ImageRefused as e:
        if e.reason != "image_missing":
            raise
    skips.add("missing_image", str(image_dir / file_name))
    return None


def collect_images(
    images: Iterable[dict[str, Any]],
    image_dir: Path,
    content: Callable[[dict[str, Any]], tuple | None],
    item_type: Callable[[Path, tuple], ItemT],
    skips: SkipCounter,
    max_images: int | None = None,
) -> list[ItemT]:
    """COCO-style image entries (``file_name``) → ``item_type(path, content(entry))``, up to ``max_images``.

    An entry whose ``content`` is empty has nothing to evaluate and is passed over (``content`` counts its
    own skips); one whose file is missing is skipped and counted as ``missing_image``.
    """
    items: list[ItemT] = []
    for entry in images:
        if max_images is not None and len(items) >= max_images:
            break
        value = content(entry)
        path = find_image(image_dir, entry["file_name"], skips, f"image {shown(entry.get('id'))}") if value else None
        if path is not None:
            items.append(item_type(path, value))
    return items
