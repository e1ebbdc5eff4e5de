"""The conversation dataset and its batch stream. One bad MLLM record never blocks a run: what the build can
check is skipped and counted then, what only fails when the image is decoded is skipped and counted while
training, and the batch fills from the next."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from loclip.encoder import boxes
from loclip.encoder.box_text import parse_boxes
from loclip.finetune.data import BatchStream, ConversationDataset
from loclip.mllm.records import load_records

TURNS = [{"from": "human", "value": "<image>\nWhat is in <region>?"}, {"from": "gpt", "value": "a red square"}]


def record(image: str = "a.png", boxes: object = ((10, 10, 30, 30),)) -> dict:
    return {
        "image": image,
        "conversations": TURNS,
        "boxes": [list(b) for b in boxes] if isinstance(boxes, tuple) else boxes,
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    Image.new("RGB", (80, 50), (200, 30, 30)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())
    (tmp_path / "outside").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "notes.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    big = tmp_path / "big.png"
    Image.new("1", (9000, 9000)).save(big, optimize=True)
    return tmp_path


def test_dataset_batches_and_skips(tiny, tmp_path: Path) -> None:
    _, processor = tiny
    Image.new("RGB", (40, 60), (200, 0, 0)).save(tmp_path / "a.png")
    good = {"image": "a.png", "conversations": TURNS, "boxes": [[5, 5, 20, 30]]}
    records = [good, good, {**good, "boxes": []}, {"conversations": TURNS}, {**good, "conversations": []}]
    (tmp_path / "data.json").write_text(json.dumps(records))
    dataset = ConversationDataset(tmp_path / "data.json", processor, max_length=512)
    assert len(dataset) == 2
    assert dict(dataset.skip_counts) == {"region_count": 1, "no_image": 1, "bad_conversation": 1}
    batch = next(iter(BatchStream(dataset, batch_size=2, seed=0)))
    assert batch["pixel_values"].shape == (2, 3, 64, 64) and batch["box_mask"].all()
    # the same geometry as the encoder's box conventions (letterbox of a 40x60 image into 64 px)
    expected = boxes.pixel_to_model(torch.tensor([[5.0, 5, 20, 30]]), (60, 40), 64)[0].float()
    torch.testing.assert_close(batch["boxes"][0, 0], expected)


def test_collate_pads_ground_boxes(ground_batch) -> None:
    assert ground_batch["ground_mask"].tolist() == [[True, True], [True, False], [False, False]]
    expected = torch.tensor(parse_boxes("[100, 200, 300, 400] [5, 6, 7, 8]"))
    torch.testing.assert_close(ground_batch["ground_boxes"][0], expected)


def test_every_checkable_fault_is_skipped_and_counted_when_the_dataset_is_built(tiny, folder: Path) -> None:
    _, processor = tiny
    records = [
        record(),
        record("b.png"),  # the two good ones
        record("missing.png"),
        record("../outside/x.png"),
        record("/dev/zero"),
        record("fifo.png"),
        record("notes.eps"),
        record("big.png"),
        record(boxes=5),
        record(boxes=((float("nan"), 1, 2, 3),)),
        record(boxes=((10, 10, 90, 30),)),
        record(boxes=((30, 10, 10, 30),)),
        record(boxes=((1, 2, 3),)),
        record(boxes=(("a", 1, 2, 3),)),
        "not a record",
        None,
        {"conversations": TURNS},
    ]
    dataset = ConversationDataset(records, processor, folder, max_length=512)
    assert len(dataset) == 2
    assert dict(dataset.skip_counts) == {
        "image_missing": 1,
        "image_outside_root": 2,
        "image_not_a_file": 1,
        "image_format": 1,
        "image_too_large": 1,
        "bad_boxes": 4,
        "box_outside_image": 1,
        "box_inverted": 1,
        "not_a_record": 2,
        "no_image": 1,
    }


def test_a_jsonl_line_that_is_not_json_is_skipped_not_fatal(tiny, folder: Path) -> None:
    _, processor = tiny
    path = folder / "data.jsonl"
    path.write_text(json.dumps(record()) + "\n{broken\n" + json.dumps(record("b.png")) + "\n")
    dataset = ConversationDataset(path, processor, max_length=512)
    assert len(dataset) == 2 and dict(dataset.skip_counts) == {"not_a_record": 1}
    (folder / "bad.json").write_text("[{oops")
    with pytest.raises(ValueError, match=r"bad.json' is not valid JSON"):
        ConversationDataset(folder / "bad.json", processor)


def test_records_nested_too_deeply_are_refused_or_skipped_never_a_recursion_error(tiny, folder: Path) -> None:
    """``json.loads`` of ``[[[[…]]]]`` 10^5 deep raised ``RecursionError``: a JSON file so nested is an error naming
    the field and the file; a JSONL line so nested is one bad record, skipped and counted."""
    _, processor = tiny
    deep = "[" * 100_000 + "]" * 100_000
    (folder / "deep.json").write_text(deep)
    with pytest.raises(ValueError, match=r"^data\.train_json: '.*deep\.json' nests its JSON too deeply to read$"):
        load_records(folder / "deep.json", "data.train_json")
    (folder / "deep.jsonl").write_text(json.dumps(record()) + "\n" + deep + "\n")
    assert load_records(folder / "deep.jsonl")[1] is None
    dataset = ConversationDataset(folder / "deep.jsonl", processor, max_length=512)
    assert len(dataset) == 1 and dict(dataset.skip_counts) == {"not_a_record": 1}
    (folder / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([record()]).encode())
    assert load_records(folder / "bom.json") == [record()]


def test_an_image_that_breaks_after_the_build_is_skipped_while_training(tiny, folder: Path) -> None:
    _, processor = tiny
    for name in ("c.png", "d.png", "e.png"):
        (folder / name).write_bytes((folder / "a.png").read_bytes())
    dataset = ConversationDataset(
        [record(n) for n in ("a.png", "b.png", "c.png", "d.png", "e.png")], processor, folder, max_length=512
    )
    assert len(dataset) == 5
    (folder / "c.png").write_bytes((folder / "c.png").read_bytes()[:60])  # truncated after the build
    stream = BatchStream(dataset, batch_size=2, seed=0)
    batches = iter(stream)
    first, second = next(batches), next(batches)  # 5 records, one broken: still two full batches
    assert first["pixel_values"].shape[0] == second["pixel_values"].shape[0] == 2
    assert dict(dataset.skip_counts) == {"image_unreadable": 1}
    assert stream.state_dict()["position"] == 5  # the broken record was consumed, not retried
