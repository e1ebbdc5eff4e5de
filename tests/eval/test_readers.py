"""Readers on tiny COCO / RefCOCO / class-folder files written by the tests, and the synthetic world."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


def test_a_templates_file_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """Read through the one text reader: a byte-order mark is read past, and text that is not UTF-8 is refused
    naming the field (the locale's encoding used to decide, and a BOM stuck to the first template)."""
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffune photo d'un {} à midi\n".encode())
    assert read_templates(path) == ("une photo d'un {} à midi",)
    path.write_bytes("une photo d'un {} à midi\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^templates: '.*t\.txt' is not UTF-8 text \(byte 18\)$"):
        read_templates(path)
    with pytest.raises(ValueError, match=r"^templates: no such file '.*nope\.txt'$"):
        read_templates(tmp_path / "nope.txt")


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


def edited(source: Path, tmp_path: Path, edit) -> Path:
    """A copy of the JSON file ``source`` after ``edit(data)``."""
    data = json.loads(source.read_text())
    edit(data)
    path = tmp_path / f"edited-{source.name}"
    path.write_text(json.dumps(data))
    return path


def append(key: str, entry: dict):
    return lambda d: d[key].append(entry)


@pytest.mark.parametrize(
    ("file", "value"),
    [("instances", 60.5), ("instances", "60"), ("instances", True), ("instances", 0), ("refs", -3), ("refs", [60])],
)
def test_a_stated_image_size_that_is_no_whole_number_names_the_image_entry(
    coco: dict[str, Path], tmp_path: Path, file: str, value: object
) -> None:
    """Boxes are clipped to the size an image entry states: a value such as 60.5 used to raise a ``TypeError`` deep
    in the box code that named no file or entry."""
    reader = {"instances": read_coco_instances, "refs": read_refs}[file]
    path = edited(coco[file], tmp_path, lambda d: d["images"][1].update(height=value))
    with pytest.raises(ValueError, match=rf"^{file}_json: images\[1\]\.height = .* is not a positive whole number"):
        reader(path, coco["images"])
    whole = edited(coco[file], tmp_path, lambda d: d["images"][1].update(height=100.0, width=None))
    assert len(reader(whole, coco["images"])) > 0  # 100.0 is whole; a null width is "not stated"


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        # two categories with id 3 used to merge into one class
        (
            "instances",
            append("categories", {"id": 3, "name": "truck"}),
            r"categories\[3\]\.id = 3 repeats categories\[1\]",
        ),
        ("instances", lambda d: d["categories"][2].update(id=True), r"categories\[2\]\.id = True is not an integer or"),
        (
            "instances",
            lambda d: d["annotations"][0].update(category_id=True),
            r"annotations\[0\]\.category_id = True is not a category id",
        ),
        (
            "instances",
            lambda d: d["annotations"][0].update(image_id=42),
            r"annotations\[0\]\.image_id = 42 is not an im",
        ),
        # a repeated image id dropped one image and scored the other with both images' annotations
        (
            "instances",
            append("images", {"id": 2, "file_name": "a.png"}),
            r"images\[3\]\.id = 2 repeats images\[1\]\.id",
        ),
        (
            "instances",
            lambda d: d["annotations"][1].update(id=10),
            r"annotations\[1\]\.id = 10 repeats annotations\[0\]",
        ),
        ("instances", lambda d: d["images"][0].update(id=1.0), r"images\[0\]\.id = 1\.0 is not an integer or a string"),
        ("captions", append("images", {"id": 1, "file_name": "b.png"}), r"images\[3\]\.id = 1 repeats images\[0\]\.id"),
        ("captions", lambda d: d["annotations"][0].update(image_id=True), r"annotations\[0\]\.image_id = True is not"),
        ("refs", append("images", {"id": 1, "file_name": "b.png"}), r"images\[3\]\.id = 1 repeats images\[0\]\.id"),
        ("refs", lambda d: d["refs"][0].update(ann_id=True), r"refs\[0\]\.ann_id = True is not an annotation id"),
        ("refs", lambda d: d["refs"][1].update(image_id=[1]), r"refs\[1\]\.image_id = \[1\] is not an image id"),
    ],
)
def test_coco_ids_are_integers_or_strings_unique_in_their_list(
    coco: dict[str, Path], tmp_path: Path, file: str, edit, message: str
) -> None:
    reader = {"instances": read_coco_instances, "captions": read_coco_captions, "refs": read_refs}[file]
    field = {"instances": "instances_json", "captions": "captions_json", "refs": "refs_json"}[file]
    with pytest.raises(ValueError, match=f"{field}: {message}"):
        reader(edited(coco[file], tmp_path, edit), coco["images"])


@pytest.mark.parametrize("file_name", ["/etc/passwd.png", "../outside.png", "link.png", "folder.png", 5])
def test_a_coco_file_name_that_leaves_the_image_folder_is_refused(
    coco: dict[str, Path], tmp_path: Path, file_name: object
) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    (coco["images"] / "link.png").symlink_to(tmp_path / "outside.png")
    (coco["images"] / "folder.png").mkdir()
    path = edited(coco["captions"], tmp_path, lambda d: d["images"][1].update(file_name=file_name))
    with pytest.raises(
        ValueError,
        match=r"image 2: image path (.* leads outside the image folder|.* is not a regular "
        r"file|must be a non-empty string, got 5)",
    ):
        read_coco_captions(path, coco["images"])
    assert read_coco_captions(coco["captions"], coco["images"]).skipped == {"missing_image": 1}  # still a skip


@pytest.mark.parametrize("file", ["instances", "captions", "refs", "classnames"])
def test_json_nested_too_deeply_or_not_utf8_names_the_file(coco: dict[str, Path], tmp_path: Path, file: str) -> None:
    """``[[[[…]]]]`` 10^5 deep raised RecursionError (a traceback from loclip-eval)."""
    path = tmp_path / f"{file}.json"
    read = {
        "instances": lambda p: read_coco_instances(p, coco["images"]),
        "captions": lambda p: read_coco_captions(p, coco["images"]),
        "refs": lambda p: read_refs(p, coco["images"]),
        "classnames": read_classnames,
    }[file]
    field = "classnames" if file == "classnames" else f"{file}_json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=rf"{field}: '.*{file}\.json' nests its JSON too deeply to read"):
        read(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ValueError, match=rf"{field}: '.*{file}\.json' is not UTF-8 text \(byte 7\)"):
        read(path)


def test_a_byte_order_mark_is_read_past(coco: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + coco["captions"].read_bytes())
    assert len(read_coco_captions(path, coco["images"])) == 2
    path.write_bytes('\ufeff{"red_square": "crimson square"}'.encode())
    assert read_classnames(path) == {"red_square": "crimson square"}
    path.write_text(json.dumps({"red_square": None}))
    with pytest.raises(ValueError, match=r"classnames: '.*bom\.json': the name of 'red_square' must be a non-empty"):
        read_classnames(path)


def test_reader_errors_end_loclip_eval_with_one_line(
    model_dir: Path, coco: dict[str, Path], synth_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Exit 2 and one line naming the file, never a traceback: a COCO JSON nested 10^5 deep, an absolute
    ``file_name``, a synthetic split whose shard is cut short."""
    from loclip.cli.evaluate import main

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    outside = edited(coco["captions"], tmp_path, lambda d: d["images"][0].update(file_name="/etc/passwd.png"))
    damaged = tmp_path / "synth"
    shutil.copytree(synth_dir / "val", damaged / "val")
    shard = damaged / "val" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    for args, message in [
        (
            ["--task", "region_cls", "--instances-json", str(deep), "--image-dir", str(coco["images"])],
            "nests its JSON too deeply",
        ),
        (
            ["--task", "retrieval", "--captions-json", str(outside), "--image-dir", str(coco["images"])],
            "image 1: image path '/etc/passwd.png' leads outside the image folder",
        ),
        (["--task", "synthetic", "--synth-dir", str(damaged)], "shard-000000.tar' cannot be read (truncated"),
    ]:
        assert main(["--model", str(model_dir), "--no-progress", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("loclip-eval: error: "), err


def test_eval_readers_say_each_reason_once_on_stderr(capsys: pytest.CaptureFixture) -> None:
    from loclip.eval.data import skip_counter

    skips = skip_counter()
    skips.add("missing_image", "a.png")
    skips.add("missing_image", "b.png")
    assert capsys.readouterr().err == ("loclip-eval: skipping missing_image (first: a.png); counts are reported\n")
    assert skips.as_dict() == {"missing_image": 2}


def test_loclip_eval_threads(
    model_dir: Path, synth_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """--threads sets torch's threads for the evaluation; a bad OMP_NUM_THREADS is one line and exit 2."""
    import torch

    from loclip.cli.evaluate import main

    args = ["--model", str(model_dir), "--task", "synthetic", "--synth-dir", str(synth_dir), "--no-progress"]
    assert main([*args, "--threads", "1"]) == 0 and torch.get_num_threads() == 1
    capsys.readouterr()
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert main(args) == 2
    assert capsys.readouterr().err == "loclip-eval: error: OMP_NUM_THREADS must be a positive integer, got 'many'\n"
