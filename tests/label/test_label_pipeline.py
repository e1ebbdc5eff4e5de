"""VESL end to end on tiny random transformers models built here: loclip's MLLM as captioner, OWLv2 as detector.

Mechanics, shapes and schema: the output shards keep every input member and field, add captions and regions
in the pretraining schema, and load in the pretraining loader. Also: image-folder input with a corrupt file,
the NMS, the query masking of the OWL detector, and the region merge rules.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
from label_helpers import owl_processor, save_tiny_mllm, save_tiny_owl
from PIL import Image

from loclip.cli.label import main as label_main
from loclip.encoder import boxes as B
from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor
from loclip.label import (
    Captions,
    Detection,
    LabelConfig,
    OwlDetector,
    RulePhrases,
    image_units,
    label,
    load_captioner,
    merge_record,
    nms,
    shard_units,
)
from loclip.pretrain.data import DataConfig, build_train_loader
from loclip.synth import SceneConfig, build_tokenizer, write_split

SIZE = 64


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # tiny models; the CI machine's 2 cores are shared


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("label")
    write_split(root / "synth", "train", 5, seed=11, config=SceneConfig(image_size=SIZE), shard_size=3)
    save_tiny_owl(root / "owl")
    save_tiny_mllm(root / "mllm")
    return root


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_tiny_models_end_to_end(world: Path) -> None:
    out = world / "out"
    captioner = load_captioner(world / "mllm", long_tokens=10, short_tokens=5)
    detector = OwlDetector.from_pretrained(world / "owl", threshold=0.1)
    config = LabelConfig(str(out), batch_size=2, max_queries=4, phrases_from_existing=True, progress=False)
    summary = label(shard_units(str(world / "synth" / "train")), config, captioner, RulePhrases(), detector)

    assert summary["complete"] and summary["images"] == 5 and summary["skipped"] == {}
    assert summary["shards"] == {"inputs": 2, "finished": 2, "written_this_run": 2}
    assert set(summary["throughput_this_run"]) == {"decode", "caption", "phrases", "detect", "write"}
    assert all(r["images"] == 5 and r["images_per_s"] > 0 for r in summary["throughput_this_run"].values())
    assert json.loads((out / "sizes.json").read_text()) == {"shard-000000.tar": 3, "shard-000001.tar": 2}
    assert json.loads((out / "label_summary.json").read_text())["images"] == 5

    generated = 0
    for name in ("shard-000000.tar", "shard-000001.tar"):
        before, after = members(world / "synth" / "train" / name), members(out / name)
        assert list(after) == list(before)  # same members, same order
        for member, data in before.items():
            if member.endswith(".png"):
                assert after[member] == data  # images pass through untouched
                continue
            old, new = json.loads(data), json.loads(after[member])
            changed = ("long_captions", "short_captions", "regions")
            assert {k: new[k] for k in old if k not in changed} == {k: v for k, v in old.items() if k not in changed}
            assert new["caption"] == old["caption"]  # an existing caption is kept
            assert new["long_captions"][: len(old["long_captions"])] == old["long_captions"]
            assert all(isinstance(t, str) for t in new["long_captions"] + new.get("short_captions", []))
            queries = new["vesl"]["queries"]
            assert 1 <= len(queries) <= 4 and len(set(queries)) == len(queries)
            assert new["regions"][: len(old["regions"])] == old["regions"]  # existing regions first, unchanged
            for region in new["regions"][len(old["regions"]) :]:
                generated += 1
                assert set(region) == {"bbox", "phrase", "score", "source"} and region["source"] == "vesl"
                assert region["phrase"] in queries and 0.1 < region["score"] <= 1
                x1, y1, x2, y2 = region["bbox"]
                assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
    assert generated == summary["generated_regions"] > 0

    processor = LoclipProcessor(LoclipImageProcessor(image_size=32), build_tokenizer())
    data = DataConfig(
        train_shards=str(out),
        image_size=32,
        max_text_length=16,
        batch_size=5,
        num_workers=0,
        num_subcaptions=3,
        num_regions=4,
    )
    loader = build_train_loader(data, processor)
    batch = next(iter(loader))
    loader.close()
    assert sorted(batch["keys"]) == [f"train-{i:08d}" for i in range(5)]
    assert batch["pixel_values"].shape == (5, 3, 32, 32) and batch["boxes"].shape == (5, 4, 4)
    assert batch["has_regions"].all() and loader.skip_counts() == {}


def test_image_folder_and_bad_images(world: Path, tmp_path: Path) -> None:
    """A folder of images with no captions: the captioner's captions become ``caption``; a corrupt file and a
    key clash are skipped and counted; output shards are cut by ``shard_size``."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (48, 30), (200, 30, 30)).save(folder / "a.jpg")
    Image.new("RGB", (20, 40), (30, 30, 200)).save(folder / "sub" / "b.v2.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (8, 8)).save(folder / "a.png")  # same key as a.jpg, sorted after it: skipped
    units = image_units(folder, shard_size=3)
    assert [u.name for u in units] == ["images-000000.tar", "images-000001.tar"]

    def captioner(images: list[Image.Image]) -> list[Captions]:
        return [Captions("a red square", "A red square on a blue circle.") for _ in images]

    def detector(images, queries):
        return [[Detection((1.0, 2.0, im.width - 1.0, im.height - 2.0), 0.9, q[0])] for im, q in zip(images, queries)]

    summary = label(units, LabelConfig(str(tmp_path / "out"), progress=False), captioner, RulePhrases(), detector)
    assert summary["images"] == 2
    assert summary["skipped"] == {"sample/bad_image": 1, "sample/duplicate_key": 1}
    first = members(tmp_path / "out" / "images-000000.tar")
    assert list(first) == ["a.jpg", "a.json"]  # "a.png" clashes with "a.jpg"; broken.png is skipped
    record = json.loads(first["a.json"])
    assert record["caption"] == "a red square" and record["long_captions"] == ["A red square on a blue circle."]
    assert "short_captions" not in record
    assert record["vesl"]["queries"] == ["red square", "blue circle"]
    assert record["regions"] == [
        {"bbox": [1.0, 2.0, 47.0, 28.0], "phrase": "red square", "score": 0.9, "source": "vesl"}
    ]
    assert list(members(tmp_path / "out" / "images-000001.tar")) == ["sub/b_v2.jpg", "sub/b_v2.json"]


def test_owl_detector_masks_padded_queries(world: Path) -> None:
    """Padded query slots (" ") never label a box, boxes come back inside each image, and an image with no
    queries is not sent to the model."""
    detector = OwlDetector.from_pretrained(world / "owl", threshold=0.0, nms="none", max_detections=1000)
    images = [Image.new("RGB", (64, 40), (200, 10, 10)), Image.new("RGB", (30, 50)), Image.new("RGB", (9, 9))]
    queries = [["red circle"], ["blue square", "small star", "green cross"], []]
    results = detector(images, queries)
    # one box per patch (16) at most: boxes that fall into the square padding are clipped away
    assert 1 <= len(results[0]) <= 16 and 1 <= len(results[1]) <= 16 and results[2] == []
    assert {d.phrase for d in results[0]} == {"red circle"}
    for dets, image, q in zip(results, images, queries):
        for d in dets:
            assert d.phrase in q and 0.0 <= d.score <= 1.0
            assert 0 <= d.box[0] <= d.box[2] <= image.width and 0 <= d.box[1] <= d.box[3] <= image.height


def test_nms() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=torch.float)
    scores = torch.tensor([0.5, 0.9, 0.3, 0.9])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]  # ties keep the earlier box; box 0 and 3 overlap box 1
    assert nms(boxes, scores, 0.5, labels=torch.tensor([0, 1, 0, 0])).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.95).tolist() == [1, 3, 0, 2]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    iou = B.box_iou(boxes[1], boxes[3]).item()
    assert nms(boxes[[1, 3]], scores[[1, 3]], iou - 1e-6).tolist() == [0]


def test_merge_rules() -> None:
    record = {
        "caption": "alt text",
        "long_captions": "one",
        "regions": [{"bbox": [0, 0, 10, 10], "phrase": "dog"}],
        "extra": 1,
    }
    caps = Captions("a dog", "A dog on grass.")
    dets = [Detection((0.0, 0.0, 10.0, 9.0), 0.8, "dog"), Detection((20.0, 20.0, 30.0, 30.0), 0.5, "grass")]
    added = merge_record(record, caps, ["dog", "grass"], dets)
    assert added["caption"] == "alt text" and added["short_captions"] == ["a dog"] and added["extra"] == 1
    assert added["long_captions"] == ["one", "A dog on grass."]
    assert [r["phrase"] for r in added["regions"]] == ["dog", "grass"]  # the duplicate of the existing box is dropped
    assert [r["phrase"] for r in merge_record(record, caps, [], dets, "replace")["regions"]] == ["dog", "grass"]
    assert merge_record(record, caps, [], dets, "fill")["regions"] == record["regions"]
    assert len(merge_record({"caption": "x"}, None, [], dets, "fill")["regions"]) == 2
    assert record["long_captions"] == "one"  # the input is not modified
    with pytest.raises(ValueError, match="regions_mode"):
        merge_record(record, caps, [], dets, "merge")  # type: ignore[arg-type]


def test_cli_errors(world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = label_main(
        [
            "--shards",
            str(tmp_path / "none-{0..1}.tar"),
            "--out",
            str(tmp_path / "o"),
            "--detector",
            str(world / "owl"),
            "--no-progress",
        ]
    )
    assert code == 2 and "no shard matches" in capsys.readouterr().err
    train = world / "synth" / "train"
    code = label_main(["--shards", str(train), "--out", str(train), "--detector", str(world / "owl"), "--no-progress"])
    assert code == 2 and "holds the input shard" in capsys.readouterr().err
    code = label_main(
        ["--images", str(train), "--label.output_dir", str(tmp_path / "o"), "--detector", "python:nowhere:x"]
    )
    assert code == 2 and "python:nowhere:x" in capsys.readouterr().err


def test_the_command_nests_label_config_under_both_spellings() -> None:
    """loclip-label's output options are the library's LabelConfig (--label.*); the flags they replaced still work."""
    from loclip.cli.label import LabelCommand, parser
    from loclip.core.recipe import parse_command

    common = ["--shards", "a.tar", "--detector", "owl"]
    new = [
        "--label.output_dir",
        "o",
        "--label.batch_size",
        "3",
        "--label.max_queries",
        "5",
        "--label.regions_mode",
        "fill",
        "--label.dedupe_iou",
        "0.5",
        "--label.phrases_from_existing",
        "--label.progress",
        "false",
    ]
    old = [
        "--out",
        "o",
        "--batch-size",
        "3",
        "--max-queries",
        "5",
        "--regions",
        "fill",
        "--dedupe-iou",
        "0.5",
        "--phrases-from-existing",
        "--no-progress",
    ]
    commands = [parse_command(parser(), LabelCommand, common + argv)[0] for argv in (new, old)]
    assert commands[0] == commands[1]
    assert commands[0].label == LabelConfig(
        "o",
        batch_size=3,
        max_queries=5,
        regions_mode="fill",
        dedupe_iou=0.5,
        phrases_from_existing=True,
        progress=False,
    )


def test_owl_processor_pads_to_square() -> None:
    """The geometry the detector relies on: OWLv2 letterboxes (pad bottom/right to a square, then resize), so
    its normalised frame is ``loclip.encoder.boxes``' model frame with ``image_size`` = the long side."""
    processor = owl_processor(32)
    image = Image.new("RGB", (64, 32), (255, 255, 255))
    pixels = processor(images=[image], return_tensors="pt")["pixel_values"][0]  # [3, 32, 32]
    mean_rows = pixels.mean(dim=(0, 2))
    assert mean_rows[:15].min() > 1.0 and mean_rows[17:].max() < 0.0  # image on top, padding below
    box = torch.tensor([[8.0, 4.0, 40.0, 28.0]])
    frame = B.pixel_to_model(box, (32, 64), image_size=64)
    assert torch.allclose(frame, box / 64)
