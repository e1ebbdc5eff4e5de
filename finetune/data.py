"""LLaVA conversation JSON → padded training batches, with a resumable, rank-sharded batch stream.

A record (the file format and the box checks: ``loclip.mllm.records``) holds an image, a conversation and
pixel boxes, one per ``<region>``. Records that cannot be trained on are skipped when the dataset is built,
counted by reason (``skip_counts``): everything checkable is checked then (the image is a regular file inside
the image folder, its header names an allowed raster format of a sane size, every box is 4 finite numbers,
ordered, inside the image). What can only fail when the image is decoded (a truncated file) is skipped and
counted while training (``BatchStream``), and the batch is filled from the next records, so one bad record
never stops a run.

For a ``box_answers="ground"`` model the box texts of the gpt turns become ``<ground>`` tokens and their boxes
the grounding head's targets (``loclip.mllm.conversation.ground_answers``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from loclip.core.image_loading import (
    DEFAULT_MAX_PIXELS,
    RASTER_FORMATS,
    ImageRefused,
    open_raster,
    resolve_image_path,
)
from loclip.mllm.conversation import (
    GROUND_TOKEN,
    IGNORE_INDEX,
    REGION_TOKEN,
    encode_conversation,
    ground_answers,
    region_count_problem,
)
from loclip.mllm.processing import LoclipLlavaProcessor
from loclip.mllm.records import check_boxes, load_records
from loclip.shards.skips import SkipCounter

logger = logging.getLogger(__name__)


class ConversationDataset(Dataset):
    """Tokenized conversations (labels only on the assistant's turns) with letterboxed images and boxes.

    Args:
        records: the records, or a path to a JSON/JSONL file of them.
        processor: gives the tokenizer, the image token count, the template and the image geometry.
        image_root: image paths are relative to it (default: the JSON file's folder).
        max_length: records whose token sequence is longer are skipped (never truncated: a cut would
            drop answers or ``<region>`` tokens and their boxes).
        box_answers: the model's ``config.box_answers``; ``"ground"`` turns box answers into ``<ground>``.
        max_pixels: records whose image has more pixels (by its header) are skipped.
    """

    def __init__(
        self,
        records: list[dict[str, Any]] | str | os.PathLike,
        processor: LoclipLlavaProcessor,
        image_root: str | os.PathLike | None = None,
        max_length: int = 2048,
        box_answers: str = "text",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if box_answers not in ("text", "ground"):
            raise ValueError(f"box_answers must be 'text' or 'ground', got {box_answers!r}")
        if isinstance(records, (str, os.PathLike)):
            image_root = image_root if image_root is not None else Path(records).parent
            records = load_records(records)
        self.processor, self.image_root, self.max_pixels = processor, Path(image_root or "."), max_pixels
        self.ground = box_answers == "ground"
        self.items: list[tuple[list[int], list[int], str, list, list]] = []
        self.skips = SkipCounter()
        for i, record in enumerate(records):
            reason = self._add(record, max_length, i)
            if reason:
                self.skips.add(reason, f"record {i}")

    @property
    def skip_counts(self) -> dict[str, int]:
        """Records skipped so far, by reason (at the build, and while training)."""
        return self.skips.as_dict()

    def _add(self, record: Any, max_length: int, index: int) -> str | None:
        """Encode one record into ``items``; return why it was skipped, if it was."""
        if not isinstance(record, dict):
            return "not_a_record"
        if not isinstance(record.get("image"), str):
            return "no_image"
        try:
            path = resolve_image_path(self.image_root, record["image"], f"record {index}")
            with Image.open(path, formats=RASTER_FORMATS) as header:  # the header only: nothing is decoded
                width, height = header.size
        except ImageRefused as e:
            return e.reason
        except (OSError, SyntaxError, ValueError):
            return "image_format"  # not an image of an allowed raster format, or a broken header
        if width * height > self.max_pixels:
            return "image_too_large"
        boxes, reason = check_boxes(record.get("boxes", []), (height, width))
        if reason:
            return reason
        turns, ground = record.get("conversations"), []
        if self.ground and isinstance(turns, list):
            turns, ground = ground_answers(turns)
        try:
            ids, labels = encode_conversation(
                self.processor.tokenizer, turns, self.processor.num_image_tokens, self.processor.template
            )
        except ValueError:
            return "bad_conversation"
        regions = sum(turn["value"].count(REGION_TOKEN) for turn in turns)
        if region_count_problem(regions, len(boxes), f"record {index}") is not None:
            return "region_count"
        grounds = sum(turn["value"].count(GROUND_TOKEN) for turn in turns)
        if self.ground and region_count_problem(grounds, len(ground), f"record {index}", GROUND_TOKEN) is not None:
            return "ground_count"  # a literal <ground> in a human turn would have no box
        if len(ids) > max_length:
            return "too_long"
        self.items.append((ids, labels, str(path), boxes, ground))
        return None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """``input_ids``/``labels`` ``[L]``, ``pixel_values`` ``[3, S, S]``, ``boxes`` ``[R, 4]`` (model frame),
        and in ground mode ``ground_boxes`` ``[G, 4]`` (model frame, as the answers wrote them)."""
        ids, labels, image_path, boxes, ground = self.items[index]
        image = open_raster(image_path, image_path, self.max_pixels)  # ImageRefused: see BatchStream
        pixels = self.processor.image_processor(image, return_original_sizes=True)
        model_boxes, _ = self.processor.image_processor.preprocess_boxes([boxes], pixels["original_sizes"])
        sample = {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "pixel_values": pixels["pixel_values"][0],
            "boxes": model_boxes[0],
        }
        if self.ground:
            sample["ground_boxes"] = torch.tensor(ground, dtype=torch.float32).reshape(-1, 4)
        return sample


def collate(samples: list[dict[str, torch.Tensor]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of samples: ``input_ids``/``labels``/``attention_mask`` ``[B, L]``, ``pixel_values``
    ``[B, 3, S, S]``, ``boxes`` ``[B, R, 4]`` + ``box_mask`` ``[B, R]`` (R = most boxes in the batch), and
    ``ground_boxes`` ``[B, G, 4]`` + ``ground_mask`` ``[B, G]`` when the samples have ground boxes."""
    length = max(len(s["input_ids"]) for s in samples)
    b = len(samples)
    input_ids = torch.full((b, length), pad_token_id, dtype=torch.long)
    labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros(b, length, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        input_ids[i, :n], labels[i, :n], attention_mask[i, :n] = s["input_ids"], s["labels"], 1
    boxes, box_mask = pad_boxes([s["boxes"] for s in samples])
    batch = {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": attention_mask,
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "boxes": boxes,
        "box_mask": box_mask,
    }
    if "ground_boxes" in samples[0]:
        batch["ground_boxes"], batch["ground_mask"] = pad_boxes([s["ground_boxes"] for s in samples])
    return batch


def pad_boxes(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row boxes ``[n_i, 4]`` → ``[B, max n_i, 4]`` zero-padded and a bool mask ``[B, max n_i]``."""
    width = max((len(r) for r in rows), default=0)
    out = torch.zeros(len(rows), width, 4)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : len(r)], mask[i, : len(r)] = r, True
    return out, mask


class BatchStream:
    """Endless batches for one rank: a seeded permutation per epoch, rank ``r`` of ``w`` takes every w-th
    index. ``state_dict``/``load_state_dict`` hold (epoch, position) so a resumed run sees the same batches."""

    def __init__(self, dataset: ConversationDataset, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if len(dataset) < world * batch_size:
            raise ValueError(
                f"the dataset has {len(dataset)} usable records; {world} rank(s) x batch_size "
                f"{batch_size} need at least {world * batch_size} (skipped: {dict(dataset.skip_counts)})"
            )
        self.dataset, self.batch_size, self.seed, self.rank, self.world = dataset, batch_size, seed, rank, world
        self.epoch = self.position = 0
        self.pad_token_id = dataset.processor.tokenizer.pad_token_id

    def _indices(self) -> np.ndarray:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))
        per_rank = len(order) // self.world  # equal shares, so ranks step together
        return order[self.rank :: self.world][:per_rank]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        """Batches of ``batch_size`` samples; a record whose image fails to decode is counted in the dataset's
        ``skip_counts`` (``image_unreadable``) and the batch takes the next record instead. The position
        counts records consumed, so a resumed run skips and fills exactly as the first one did."""
        samples: list[dict[str, torch.Tensor]] = []
        while True:
            indices = self._indices()
            while self.position < len(indices):
                index = int(indices[self.position])
                self.position += 1
                try:
                    samples.append(self.dataset[index])
                except ImageRefused as e:
                    self.dataset.skips.add(e.reason, f"record {index}")
                    logger.warning("record %d skipped while training: %s", index, e)
                    continue
                if len(samples) == self.batch_size:
                    yield collate(samples, self.pad_token_id)
                    samples = []
            samples = []  # an epoch's tail shorter than a batch is dropped, as before
            self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
