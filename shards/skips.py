"""Skipped data, counted by reason: nothing in the stream is dropped without a count.

Reasons are ``"<what>/<why>"`` strings so TensorBoard groups them: ``sample/...`` drops a whole sample,
``region/...`` (and ``field/...``) drop one region (or caption entry) and keep the sample, ``shard/...`` and
``member/...`` concern the container. Each DataLoader worker keeps its own counter and ships the counts
added since its previous batch with every batch (``pop_delta``); the main process sums those deltas.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

SHARD_UNREADABLE = "shard/unreadable"  # could not be opened or read at all
SHARD_TRUNCATED = "shard/truncated"  # failed part-way; the members read before the failure are used
MEMBER_BAD_NAME = "member/bad_name"  # tar member not named "<key>.<ext>"
MEMBER_NOT_A_FILE = "member/not_a_file"  # symbolic or hard link, device, FIFO: never followed or read
MEMBER_TOO_LARGE = "member/too_large"  # over data.max_member_bytes by its tar header: never read
MEMBER_DUPLICATE = "member/duplicate"  # a name its sample already holds: the first member wins
SAMPLE_DUPLICATE_KEY = "sample/duplicate_key"  # a key an earlier sample of the shard (or image folder) used: first wins
SAMPLE_MISSING_JSON = "sample/missing_json"
SAMPLE_BAD_JSON = "sample/bad_json"  # not UTF-8 JSON, or not an object
SAMPLE_MISSING_CAPTION = "sample/missing_caption"  # absent, not a string, or blank
SAMPLE_MISSING_IMAGE = "sample/missing_image"
SAMPLE_BAD_IMAGE = "sample/bad_image"  # corrupt, truncated, or not an image of an allowed raster format
SAMPLE_IMAGE_TOO_LARGE = "sample/image_too_large"  # over data.max_image_pixels by its header (never decoded)
SAMPLE_IMAGE_PATH = "sample/image_path_refused"  # JSONL image path outside image_root, or not a regular file
FIELD_BAD_CAPTION_LIST = "field/bad_caption_list"  # long_captions/short_captions not a list: ignored
FIELD_BAD_CAPTION_ENTRY = "field/bad_caption_entry"  # one non-string or blank entry: dropped
REGION_BAD_LIST = "region/bad_list"  # "regions" not a list: all ignored
REGION_BAD_BBOX = "region/bad_bbox"  # not 4 finite numbers, or x2 < x1 / y2 < y1
REGION_BAD_PHRASE = "region/bad_phrase"  # not a non-blank string
REGION_OUTSIDE_IMAGE = "region/outside_image"  # beyond the tolerance (boxes within it are clipped)
REGION_ZERO_AREA = "region/zero_area"  # zero width or height (after clipping)


class SkipCounter:
    """``reason -> count``, with deltas for shipping counts out of worker processes.

    ``on_first(reason, detail)``: called for the first skip of each reason (e.g. to say it on stderr while a
    command runs, as ``loclip-eval`` does); every skip is counted either way.
    """

    def __init__(
        self, counts: Mapping[str, int] | None = None, on_first: Callable[[str, str], None] | None = None
    ) -> None:
        self._total: Counter[str] = Counter(counts or {})
        self._delta: Counter[str] = Counter()
        self._on_first = on_first

    def add(self, reason: str, detail: str = "", n: int = 1) -> None:
        """Count ``n`` skips for ``reason``; ``detail`` (which key, what value) goes to the debug log."""
        if self._on_first is not None and not self._total[reason]:
            self._on_first(reason, detail)
        self._total[reason] += n
        self._delta[reason] += n
        if detail:
            logger.debug("skipped (%s): %s", reason, detail)

    def update(self, counts: Mapping[str, int]) -> None:
        """Add counts from elsewhere, e.g. a worker's delta (not part of this counter's own delta)."""
        self._total.update(counts)

    def pop_delta(self) -> dict[str, int]:
        """Counts added by ``add`` since the previous call."""
        delta, self._delta = dict(self._delta), Counter()
        return delta

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self._total.items()))

    @property
    def total(self) -> int:
        return sum(self._total.values())

    def __repr__(self) -> str:
        return f"SkipCounter({self.as_dict()})"
