"""Sources, decoding and validation, skip counting, JSONL, and collation through the processor."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor
from loclip.pretrain.data import (
    BATCH_KEYS,
    DataConfig,
    SkipCounter,
    build_specs,
    build_train_loader,
    decode_sample,
    expand_shard_urls,
    prepare,
    read_members,
)
from loclip.synth import build_tokenizer

IMAGE_SIZE, L = 24, 12


def png(width: int = 20, height: int = 16, seed: int = 0) -> bytes:
    """A noisy RGB PNG (noise so that cutting the file cuts pixel data)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def icon() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="ICO")
    return buf.getvalue()


def meta(caption: object = "a red circle", **fields: object) -> bytes:
    return json.dumps({"caption": caption, **fields}).encode()


def write_shard(path: Path, samples: list[dict[str, object]]) -> Path:
    with wds.TarWriter(str(path), encoder=False) as writer:
        for sample in samples:
            writer.write(sample)
    return path


REGIONS_B0 = [
    {"bbox": [2, 3, 10, 12], "phrase": "red circle"},
    {"bbox": [-0.5, 0, 20.8, 16.5], "phrase": "whole image"},  # within the 1 px tolerance: clipped, kept
    {"bbox": [4, 4, 4, 9], "phrase": "flat"},  # zero area
    {"bbox": [5, 5, 25, 9], "phrase": "too wide"},  # 5 px outside a 20 px wide image
    {"bbox": [1, 1, 5, 5], "phrase": 7},  # non-string phrase
    {"bbox": [1, 1, 5], "phrase": "three numbers"},
]
GOOD = ["a0", "a1", "a2", "b0", "b1", "b2"]
EXPECTED_A = {"sample/bad_image": 3, "sample/bad_json": 1, "sample/missing_json": 1, "sample/missing_image": 1}
EXPECTED_B = {
    "sample/missing_caption": 2,
    "sample/bad_json": 1,
    "region/zero_area": 1,
    "region/outside_image": 1,
    "region/bad_phrase": 1,
    "region/bad_bbox": 1,
}


@pytest.fixture
def corrupt_shards(tmp_path: Path) -> list[Path]:
    """Shard A: good samples among broken images and JSON; shard B: among bad captions and bad regions."""
    a = [{"__key__": f"a{i}", "png": png(seed=i), "json": meta()} for i in range(3)] + [
        {"__key__": "a_truncated", "png": png(seed=9)[:200], "json": meta()},
        {"__key__": "a_not_image", "png": b"this is not a picture", "json": meta()},
        {"__key__": "a_icon", "png": icon(), "json": meta()},  # a real image, but not in a format we decode
        {"__key__": "a_bad_json", "png": png(), "json": b"{caption: oops"},
        {"__key__": "a_no_json", "png": png()},
        {"__key__": "a_no_image", "json": meta()},
    ]
    b = [
        {"__key__": "b0", "png": png(), "json": meta(regions=REGIONS_B0, long_captions=["One. Two."])},
        {"__key__": "b1", "png": png(), "json": meta(regions=[{"bbox": [0, 0, 5, 5], "phrase": "dot"}])},
        {"__key__": "b2", "jpg": png(), "json": meta(short_captions=["short"])},  # any image extension is an image
        {"__key__": "b_no_caption", "png": png(), "json": b'{"long_captions": ["x"]}'},
        {"__key__": "b_blank_caption", "png": png(), "json": meta("   ")},
        {"__key__": "b_list_json", "png": png(), "json": b'["caption"]'},
    ]
    return [write_shard(tmp_path / "a.tar", a), write_shard(tmp_path / "b.tar", b)]


def processor() -> LoclipProcessor:
    return LoclipProcessor(LoclipImageProcessor(image_size=IMAGE_SIZE), build_tokenizer())


def config(**kw: object) -> DataConfig:
    base = dict(image_size=IMAGE_SIZE, max_text_length=L, batch_size=2, num_workers=0, num_subcaptions=3, num_regions=2)
    return DataConfig(**{**base, **kw})  # type: ignore[arg-type]


def decode_all(url: str, counter: SkipCounter | None = None) -> tuple[list, SkipCounter]:
    counter = counter or SkipCounter()
    samples = [decode_sample(raw, counter) for raw in read_members(build_specs(config(train_shards=url))[0], counter)]
    return [s for s in samples if s is not None], counter


def test_bad_samples_skipped_and_counted_by_reason(corrupt_shards: list[Path]) -> None:
    (a, counts_a), (b, counts_b) = (decode_all(str(p)) for p in corrupt_shards)
    assert [s.key for s in a + b] == GOOD
    assert counts_a.as_dict() == EXPECTED_A and counts_b.as_dict() == EXPECTED_B
    b0 = b[0]
    assert [r.phrase for r in b0.regions] == ["red circle", "whole image"]  # bad regions drop, the sample stays
    assert b0.regions[1].box == (0.0, 0.0, 20.0, 16.0)  # clipped to the 20x16 image
    assert b0.long_captions == ["One. Two."] and b[2].short_captions == ["short"] and b0.image.mode == "RGB"


def test_loader_delivers_good_samples_and_sums_worker_counts(corrupt_shards: list[Path]) -> None:
    cfg = config(train_shards=[str(p) for p in corrupt_shards], batch_size=1, num_workers=2)
    loader = build_train_loader(cfg, processor())
    it = iter(loader)
    first_epoch = [next(it)["keys"][0] for _ in range(6)]  # one shard per worker per epoch, 3 good samples each
    assert sorted(first_epoch) == GOOD
    for _ in range(6):
        next(it)
    loader.close()
    # after a second full epoch all of epoch 0's bad members, from both workers, are counted (some of epoch 1's may be)
    per_epoch = Counter(EXPECTED_A) + Counter(EXPECTED_B)
    counts = loader.skip_counts()
    assert set(counts) == set(per_epoch)
    assert all(per_epoch[r] <= counts[r] <= 2 * per_epoch[r] for r in per_epoch), counts


def test_skip_counts_resume_exactly(corrupt_shards: list[Path], tmp_path: Path) -> None:
    """Counts travel with batches and in the state: a resumed run reports what an uninterrupted one does,
    without counting again the container problems of a shard it re-reads to find its place."""
    cut = tmp_path / "cut.tar"
    data = corrupt_shards[1].read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    cfg = config(train_shards=[str(p) for p in [*corrupt_shards, cut]], batch_size=1, num_workers=2)
    reference = build_train_loader(cfg, processor())
    it = iter(reference)
    expected = [(next(it)["keys"], reference.skip_counts()) for _ in range(14)]
    reference.close()
    assert any("shard/truncated" in counts for _, counts in expected)
    for n in (3, 8):
        first = build_train_loader(cfg, processor())
        it = iter(first)
        for _ in range(n):
            next(it)
        resumed = build_train_loader(cfg, processor())
        resumed.load_state_dict(first.state_dict())
        first.close()
        it = iter(resumed)
        got = [(next(it)["keys"], resumed.skip_counts()) for _ in range(14 - n)]
        resumed.close()
        assert got == expected[n:], f"resume after {n}"


def test_patterns_pipes_globs_and_directories_read_the_same(corrupt_shards: list[Path], tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, p in enumerate(corrupt_shards):
        shutil.copy(p, shards / f"train-{i:06d}.tar")
    plain = [str(shards / "train-000000.tar"), str(shards / "train-000001.tar")]
    assert expand_shard_urls(str(shards / "train-{000000..000001}.tar")) == plain
    assert expand_shard_urls(str(shards / "train-*.tar")) == plain
    assert expand_shard_urls(str(shards)) == plain
    assert expand_shard_urls([plain[1], "file://" + plain[0]]) == [plain[1], "file://" + plain[0]]
    with pytest.raises(ValueError, match="no shard matches"):
        expand_shard_urls(str(shards / "train-{000002..000003}.tar"))
    keys = lambda url: [s.key for s in decode_all(url)[0]]  # noqa: E731
    expected = keys(plain[0]) + keys(plain[1])
    piped = expand_shard_urls(f"pipe:cat {shards}/train-{{000000..000001}}.tar")
    assert [k for url in piped for k in keys(url)] == expected
    assert keys("file://" + plain[0]) == expected[:3]


def test_sizes_from_sizes_json_else_counted(corrupt_shards: list[Path]) -> None:
    urls = [str(p) for p in corrupt_shards]
    assert [s.size for s in build_specs(config(train_shards=urls))] == [None, None]
    loader = build_train_loader(config(train_shards=urls), processor())
    assert loader.num_samples() == 9 + 6  # counted: every sample read, good or bad
    (corrupt_shards[0].parent / "sizes.json").write_text(json.dumps({"a.tar": 100, "b.tar": 200}))
    assert [s.size for s in build_specs(config(train_shards=urls))] == [100, 200]


def test_broken_containers_are_counted_not_fatal(corrupt_shards: list[Path], tmp_path: Path) -> None:
    data = corrupt_shards[0].read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    samples, counter = decode_all(str(cut))
    assert samples and {s.key for s in samples} <= {"a0", "a1", "a2"}  # what precedes the cut is kept
    assert counter.as_dict().get("shard/truncated") == 1
    for url in (f"pipe:cat {tmp_path}/missing.tar", "pipe:exit 3"):
        samples, counter = decode_all(url)
        assert samples == [] and counter.as_dict() == {"shard/unreadable": 1}
    named = tmp_path / "named.tar"
    with tarfile.open(named, "w") as tar:
        info = tarfile.TarInfo("no_extension")
        tar.addfile(info, io.BytesIO(b""))
    assert decode_all(str(named))[1].as_dict() == {"member/bad_name": 1}


def test_jsonl_source(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(png())
    (tmp_path / "imgs" / "y.png").write_bytes(png(8, 30))
    lines = [
        {"image": "imgs/x.png", "caption": "a red circle", "regions": [{"bbox": [1, 1, 9, 9], "phrase": "red circle"}]},
        {"image": "imgs/y.png", "caption": "a blue square", "key": "my-key", "long_captions": ["A. B."]},
        {"image": "imgs/missing.png", "caption": "gone"},
        {"caption": "no image field"},
    ]
    rows = [json.dumps(x) for x in lines]
    text = "\n".join(rows[:2]) + "\n\n" + "\n".join(rows[2:]) + "\n{oops\n"  # a blank line, a broken one
    (tmp_path / "data.jsonl").write_text(text)
    specs = build_specs(config(jsonl=str(tmp_path / "data.jsonl"), jsonl_chunk_size=2))
    assert [(s.kind, s.first_line, s.lines, s.size) for s in specs] == [
        ("jsonl", 0, 2, 2),
        ("jsonl", 2, 2, 1),
        ("jsonl", 4, 2, 2),
    ]
    counter = SkipCounter()
    samples = [decode_sample(r, counter) for spec in specs for r in read_members(spec, counter)]
    good = [s for s in samples if s is not None]
    assert [s.key for s in good] == ["data.jsonl:0", "my-key"] and good[1].image.size == (8, 30)
    assert counter.as_dict() == {"sample/missing_image": 2, "sample/bad_json": 1}
    # images relative to a given root instead of the JSONL's folder
    elsewhere = tmp_path / "meta"
    elsewhere.mkdir()
    shutil.move(tmp_path / "data.jsonl", elsewhere / "data.jsonl")
    loader = build_train_loader(config(jsonl=str(elsewhere / "data.jsonl"), image_root=str(tmp_path)), processor())
    batch = next(iter(loader))
    loader.close()
    assert sorted(batch["keys"]) == ["data.jsonl:0", "my-key"]


def test_batch_layout_and_boxes_match_the_processor(corrupt_shards: list[Path]) -> None:
    cfg = config(train_shards=str(corrupt_shards[1]), batch_size=3, num_subcaptions=4, num_regions=3)
    proc = processor()
    loader = build_train_loader(cfg, proc)
    batch = next(iter(loader))
    loader.close()
    B, K, M, S = 3, 4, 3, IMAGE_SIZE
    shapes = {
        "pixel_values": ((B, 3, S, S), torch.float32),
        "original_sizes": ((B, 2), torch.int64),
        "input_ids": ((B, L), torch.int64),
        "attention_mask": ((B, L), torch.int64),
        "sub_input_ids": ((B, K, L), torch.int64),
        "sub_attention_mask": ((B, K, L), torch.int64),
        "sub_mask": ((B, K), torch.bool),
        "boxes": ((B, M, 4), torch.float32),
        "box_mask": ((B, M), torch.bool),
        "region_input_ids": ((B, M, L), torch.int64),
        "region_attention_mask": ((B, M, L), torch.int64),
        "has_regions": ((B,), torch.bool),
    }
    assert set(batch) == set(shapes) | {"keys"} == set(BATCH_KEYS) and sorted(batch["keys"]) == ["b0", "b1", "b2"]
    for name, (shape, dtype) in shapes.items():
        assert (tuple(batch[name].shape), batch[name].dtype) == (shape, dtype), name
    samples = {s.key: s for s in decode_all(str(corrupt_shards[1]))[0]}

    def tokens(texts: list[str]) -> dict[str, torch.Tensor]:
        return proc.tokenizer(texts, padding="max_length", truncation=True, max_length=L, return_tensors="pt")

    for i, key in enumerate(batch["keys"]):
        item = prepare(samples[key], 0, cfg)  # the first epoch's draws
        expected = proc(images=[item.image], boxes=[torch.tensor(item.boxes).reshape(-1, 4)])
        R = len(item.boxes)
        assert torch.equal(batch["pixel_values"][i], expected["pixel_values"][0])
        assert torch.equal(batch["boxes"][i, :R], expected["boxes"][0]) and not batch["boxes"][i, R:].any()
        assert batch["box_mask"][i].tolist() == [j < R for j in range(M)] and batch["has_regions"][i] == (R > 0)
        if R:
            assert torch.equal(batch["region_input_ids"][i, :R], tokens(item.phrases)["input_ids"])
        assert torch.equal(batch["sub_input_ids"][i], tokens(item.subcaptions)["input_ids"])
        assert batch["sub_mask"][i].tolist() == item.sub_mask
        assert torch.equal(batch["input_ids"][i], tokens([item.caption])["input_ids"][0])
    # a masked slot holds the tokenised empty string, never an all-padding row
    assert (batch["sub_attention_mask"].sum(-1) > 0).all() and (batch["region_attention_mask"].sum(-1) > 0).all()


def test_jsonl_image_paths_are_regular_files_inside_the_root(tmp_path: Path) -> None:
    """/dev/zero would exhaust memory, a FIFO would block forever, ../ leaves the root: all skipped, counted."""
    root = tmp_path / "root"
    (root / "imgs").mkdir(parents=True)
    (root / "imgs" / "ok.png").write_bytes(png())
    (tmp_path / "outside.png").write_bytes(png())
    os.mkfifo(root / "imgs" / "fifo.png")
    os.symlink(tmp_path / "outside.png", root / "imgs" / "link.png")
    paths = ["imgs/ok.png", "/dev/zero", "imgs/fifo.png", "../outside.png", "imgs/link.png", "imgs", "nope.png"]
    (root / "data.jsonl").write_text("".join(json.dumps({"image": p, "caption": "c"}) + "\n" for p in paths))
    counter = SkipCounter()
    spec = build_specs(config(jsonl=str(root / "data.jsonl")))[0]
    samples = [s for s in (decode_sample(r, counter) for r in read_members(spec, counter)) if s is not None]
    assert [s.key for s in samples] == ["data.jsonl:0"]
    assert counter.as_dict() == {"sample/image_path_refused": 5, "sample/missing_image": 1}


def test_a_decompression_bomb_is_skipped_before_decoding_and_the_limit_is_a_recipe_field(tmp_path: Path) -> None:
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, format="PNG", optimize=True)
    assert len(bomb.getvalue()) < 100_000  # ~20 KB on disk, 144 megapixels decoded
    url = str(
        write_shard(
            tmp_path / "bomb.tar",
            [
                {"__key__": "bomb", "png": bomb.getvalue(), "json": meta()},
                {"__key__": "fine", "png": png(), "json": meta()},
            ],
        )
    )
    good, counter = decode_all(url)
    assert [s.key for s in good] == ["fine"] and counter.as_dict() == {"sample/image_too_large": 1}
    counter = SkipCounter()
    raw = read_members(build_specs(config(train_shards=url))[0], counter)
    assert decode_sample(raw[1], counter, max_pixels=20 * 16) is not None  # exactly at the limit: decoded
    assert decode_sample(raw[1], counter, max_pixels=20 * 16 - 1) is None
    with pytest.raises(ValueError, match="data.max_image_pixels = 0: expected an integer >= 1"):
        config(max_image_pixels=0)


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data)
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    tar.addfile(info, io.BytesIO(data))


def test_members_over_the_byte_limit_links_repeats_and_deep_json_are_counted(tmp_path: Path) -> None:
    """A member over ``data.max_member_bytes`` is skipped from its header; a symbolic link is never followed; a
    name repeated in a sample, or a key coming back, keeps the first; JSON nested 5000 deep is bad JSON (it
    used to raise RecursionError in the loader worker). Each is counted; the limit is a recipe field."""
    url = tmp_path / "s.tar"
    with tarfile.open(url, "w") as tar:
        for name, data in [
            ("ok.json", meta()),
            ("ok.png", png()),
            ("big.json", meta()),
            ("big.png", png(100, 100)),
            ("deep.json", b"[" * 5000 + b"]" * 5000),
            ("deep.png", png()),
            ("ok.json", meta("again")),
            ("fine.json", meta()),
            ("fine.png", png()),
            ("fine.png", png(seed=1)),
        ]:
            add_member(tar, name, data)
            if name == "big.png":
                add_member(tar, "link.json", meta())
                add_member(tar, "link.png", kind=tarfile.SYMTYPE)
    assert len(png()) < 20_000 < len(png(100, 100))
    counter = SkipCounter()
    cfg = config(train_shards=str(url), max_member_bytes=20_000)
    samples = [decode_sample(raw, counter) for raw in read_members(build_specs(cfg)[0], counter, cfg.max_member_bytes)]
    assert [s.key for s in samples if s is not None] == ["ok", "fine"]
    assert samples[-1].image.tobytes() == to_rgb_bytes(png())  # the first fine.png
    assert counter.as_dict() == {
        "member/too_large": 1,
        "member/not_a_file": 1,
        "member/duplicate": 1,
        "sample/duplicate_key": 1,
        "sample/missing_image": 2,
        "sample/bad_json": 1,
    }
    for limit, too_large in ((20_000, True), (DataConfig.max_member_bytes, False)):  # the field reaches the loader
        loader = build_train_loader(config(train_shards=str(url), max_member_bytes=limit, batch_size=1), processor())
        it = iter(loader)
        for _ in range(4):  # two epochs of two good samples: the first epoch's counts have all arrived
            next(it)
        loader.close()
        assert ("member/too_large" in loader.skip_counts()) is too_large
    with pytest.raises(ValueError, match="data.max_member_bytes = 0: expected an integer >= 1"):
        config(max_member_bytes=0)


def to_rgb_bytes(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()
