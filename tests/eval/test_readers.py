"""Readers on tiny COCO / RefCOCO / class-folder files written by the tests, and the synthetic world."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from loclip.eval import read_coco_captions, read_coco_instances, read_image_folder, read_refs
from loclip.eval.folder import read_classnames
from loclip.eval.prompts import check_templates, read_templates
from loclip.eval.synth_data import (
    ALL_PHRASES,
    read_scenes,
    synthetic_captions,
    synthetic_regions,
    synthetic_segmentation,
    world_prompts,
)
from loclip.synth import BACKGROUNDS, COLOURS, SHAPES, label_map


def test_coco_instances(coco: dict[str, Path]) -> None:
    data = read_coco_instances(coco["instances"], coco["images"])
    assert data.classnames == ("car", "red circle", "dog")  # category ids 3, 7, 18 ascending
    assert data.skipped == {"crowd_box": 1, "tiny_box": 1, "missing_image": 1}
    assert [item.image.name for item in data.items] == ["a.png", "b.png"]
    a, b = data.items
    assert [(r.box, r.label) for r in a.regions] == [((10.0, 10.0, 40.0, 30.0), 2), ((0.0, 0.0, 80.0, 60.0), 0)]
    assert [(r.box, r.label) for r in b.regions] == [((5.0, 50.0, 45.0, 90.0), 0)]
    assert len(read_coco_instances(coco["instances"], coco["images"], max_images=1)) == 1
    # a lower threshold keeps the 4-pixel-wide box
    assert read_coco_instances(coco["instances"], coco["images"], min_box_size=2).skipped.get("tiny_box") is None


def test_coco_instances_errors(coco: dict[str, Path], tmp_path: Path) -> None:
    data = json.loads(coco["instances"].read_text())
    data["annotations"][2]["category_id"] = 99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotations\[2\]\.category_id = 99"):
        read_coco_instances(bad, coco["images"])
    with pytest.raises(ValueError, match="instances_json: no such file"):
        read_coco_instances(tmp_path / "nope.json", coco["images"])
    with pytest.raises(ValueError, match="image_dir: no such directory"):
        read_coco_instances(coco["instances"], tmp_path / "nope")
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_coco_instances(bad, coco["images"])
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="needs a 'annotations' list"):
        read_coco_instances(bad, coco["images"])


def test_coco_captions(coco: dict[str, Path], tmp_path: Path) -> None:
    data = read_coco_captions(coco["captions"], coco["images"])
    assert [item.captions for item in data.items] == [
        ("a large red square on the left", "a red square"),  # caption ids 100, 101: ascending, stripped
        ("a blue square",),
    ]
    assert data.skipped == {"missing_image": 1}
    raw = json.loads(coco["captions"].read_text())
    raw["annotations"][0]["image_id"] = 42
    (tmp_path / "c.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"annotations\[0\]\.image_id = 42"):
        read_coco_captions(tmp_path / "c.json", coco["images"])


def test_all_images_missing_gives_an_empty_dataset_error(coco: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    data = read_coco_captions(coco["captions"], tmp_path / "empty")
    assert len(data) == 0 and data.skipped == {"missing_image": 3}
    with pytest.raises(ValueError, match="has no images to evaluate.*missing_image"):
        data.require_items("images")


def test_refs(coco: dict[str, Path], tmp_path: Path) -> None:
    data = read_refs(coco["refs"], coco["images"])
    a, b = data.items
    # refs 0 and 1 share annotation 10: one region with both sentences
    assert [(r.box, r.phrases) for r in a.regions] == [
        ((10.0, 10.0, 40.0, 30.0), ("the red square", "red thing on the left"))
    ]
    assert [r.phrases for r in b.regions] == [("blue square below",), ("top left corner",)]
    assert data.skipped == {"missing_image": 1}
    val = read_refs(coco["refs"], coco["images"], split="val")
    assert [r.phrases for r in val.items[1].regions] == [("blue square below",)]
    with pytest.raises(ValueError, match="refs_split: no refs with split 'test'.*testA"):
        read_refs(coco["refs"], coco["images"], split="test")
    raw = json.loads(coco["refs"].read_text())
    raw["refs"][2]["ann_id"] = 999
    (tmp_path / "r.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"refs\[2\]\.ann_id = 999"):
        read_refs(tmp_path / "r.json", coco["images"])
    raw["refs"][2] = {"image_id": 2, "ann_id": 14, "sentences": []}
    (tmp_path / "r.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"refs\[2\]\.sentences is empty"):
        read_refs(tmp_path / "r.json", coco["images"])


def test_image_folder(coco: dict[str, Path], tmp_path: Path) -> None:
    data = read_image_folder(coco["folder"])
    assert data.classnames == ("blue circle", "red square")
    assert [i.label for i in data.items] == [0, 1, 0, 1, 0, 1]  # round-robin; notes.txt ignored
    assert [i.label for i in data.head(2).items] == [0, 1]
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"red_square": "crimson square"}))
    assert read_image_folder(coco["folder"], read_classnames(names)).classnames == ("blue circle", "crimson square")
    names.write_text(json.dumps({"green_star": "star"}))
    with pytest.raises(ValueError, match=r"classnames: folders \['green_star'\]"):
        read_image_folder(coco["folder"], read_classnames(names))
    with pytest.raises(ValueError, match="has no class sub-folders"):
        read_image_folder(coco["images"])


def test_templates(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("# mine\na photo of a {}.\n\n  a {} in the wild  \n")
    assert read_templates(path) == ("a photo of a {}.", "a {} in the wild")
    with pytest.raises(ValueError, match=r"templates\[1\] = 'no slot'"):
        check_templates(["{}", "no slot"])
    with pytest.raises(ValueError, match="templates is empty"):
        check_templates([])


def test_synthetic_datasets(synth_dir: Path) -> None:
    records = read_scenes(synth_dir, "val", 5)
    assert len(records) == 5
    captions = synthetic_captions(records, long=True)
    assert captions.items[0].captions == (records[0].meta["long_captions"][0],)
    regions = synthetic_regions(records)
    assert regions.classnames == ALL_PHRASES and len(ALL_PHRASES) == 128
    first = regions.items[0].regions[0]
    assert ALL_PHRASES[first.label] == first.phrases[0] == records[0].meta["regions"][0]["phrase"]
    for item in synthetic_regions(records, unique_only=True).items:
        phrases = [r.phrases[0] for r in item.regions]
        assert len(set(phrases)) == len(phrases)
    with pytest.raises(ValueError, match="no 'novel' split"):
        read_scenes(synth_dir, "novel")


def test_missing_keys_and_missing_pycocotools(coco: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    raw = json.loads(coco["instances"].read_text())
    del raw["annotations"][1]["bbox"]
    (tmp_path / "i.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"instances_json: annotations\[1\] lacks 'bbox'"):
        read_coco_instances(tmp_path / "i.json", coco["images"])
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)  # as if the eval extra were not installed
    with pytest.raises(ImportError, match=r"loclip\[eval\]"):
        read_coco_captions(coco["captions"], coco["images"])


@pytest.mark.parametrize("labels", ["phrase", "colour", "shape"])
def test_synthetic_segmentation(synth_dir: Path, labels: str) -> None:
    records = read_scenes(synth_dir, "val", 4)
    data = synthetic_segmentation(records, labels)
    objects = {"phrase": ALL_PHRASES, "colour": tuple(COLOURS), "shape": tuple(SHAPES)}[labels]
    assert data.classnames == ("background", *objects) and data.name == f"synthetic-segmentation-{labels}"
    assert data.ignore_index is None  # every pixel of a scene is labelled
    for record, item in zip(records, data.items):
        stored = label_map(record)  # 0 background, k + 1 where object k is visible
        assert item.mask.shape == stored.shape == (record.image.height, record.image.width)
        assert np.array_equal(item.mask == 0, stored == 0)
        for k, obj in enumerate(record.meta["objects"]):
            name = f"{obj['size']} {obj['colour']} {obj['shape']}" if labels == "phrase" else obj[labels]
            assert (item.mask[stored == k + 1] == data.classnames.index(name)).all()
        # the stored label map is the scene's colours: an object's pixels are its colour
        pixels = np.asarray(record.image)
        for k, obj in enumerate(record.meta["objects"]):
            assert (pixels[stored == k + 1] == COLOURS[obj["colour"]]).all()
    # background: one prompt group per background colour, in the world's own words
    assert data.class_prompts[0] == tuple((f"The background is {b}.",) for b in BACKGROUNDS)
    assert world_prompts(labels, background=False) == (objects, data.class_prompts[1:])
    with pytest.raises(ValueError, match="labels must be one of"):
        synthetic_segmentation(records, "size")
