"""Zero-shot multi-label classification: the exact mAP of a colour model whose image and text embeddings are known,
the COCO reader (an image's labels are its non-crowd categories) and the synthetic world's label sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import paint

from loclip.eval import Dataset, MultiLabelImage, evaluate_multilabel
from loclip.eval.coco import read_coco_multilabel
from loclip.eval.synth_data import ALL_PHRASES, read_scenes, synthetic_multilabel
from loclip.synth import COLOURS, SHAPES

ALL = (slice(None), slice(None))


def _toy() -> Dataset[MultiLabelImage]:
    """Image embedding = mean normalised pixel; red (1,-1,-1), green (-1,1,-1), blue (-1,-1,1) pairwise cosine
    -1/3. Cosines with (red, green, blue), worked out in the comments; labels are the dataset's truth."""
    red, green, blue = 0, 1, 2
    return Dataset(
        "toy",
        [
            MultiLabelImage(paint(64, 64, [(*ALL, "red")]), (red,)),  # 1, -1/3, -1/3
            MultiLabelImage(paint(32, 64, [(*ALL, "blue")]), (blue,)),  # -1/3, -1/3, 1 (padding adds 0)
            MultiLabelImage(paint(64, 64, [(*ALL, "green")]), (green,)),  # -1/3, 1, -1/3
            # half red, half blue: mean (0, -1, 0) → 1/√3, -1/√3, 1/√3
            MultiLabelImage(
                paint(64, 64, [(slice(None), slice(0, 32), "red"), (slice(None), slice(32, 64), "blue")]), (red, blue)
            ),
            # 3/4 red, 1/4 blue: mean (1/2, -1, -1/2) → 2/√4.5, -1/√4.5, 0; labelled green too, which it does not show
            MultiLabelImage(
                paint(64, 64, [(slice(None), slice(0, 48), "red"), (slice(None), slice(48, 64), "blue")]), (red, green)
            ),
        ],
        ("red", "green", "blue", "white"),
    )


def test_evaluate_multilabel_exact(colour_model) -> None:
    model, processor = colour_model
    result = evaluate_multilabel(model, processor, _toy(), templates=("a photo of a {}.", "{}"), batch_size=2)
    # red: its positives (1, .94, .58) outrank everything else → AP 1; blue: positives 1 and .58 first → AP 1;
    # green: the green image first (1/1); the 3/4-red image at -1/√4.5 ≈ -.47 comes after the two at -1/3 → 2/4;
    # AP (1 + 1/2) / 2. white has no positive: left out. mAP = (1 + 1 + 3/4) / 3.
    assert result.metrics == pytest.approx({"mAP": 11 / 12})
    assert result.info == {"num_images": 5, "num_classes": 4, "classes_present": 3, "skipped": {}}
    assert (result.task, result.dataset) == ("multilabel", "toy")


def test_evaluate_multilabel_class_prompts_and_errors(colour_model, model_and_processor) -> None:
    model, processor = colour_model
    # class prompts replace the templates; "warm" is red or white, and a class takes its best group: the red
    # image scores 1 (its red group), the half red, half white one (mean pixel (1, 0, 0)) 1/√3 in both groups.
    # (Averaging the two groups into (1, 0, 0) would rank the half-white image first.) blue: the blue image
    # first, then red (-1/3) above the half-white one (-1/√3) → (1/1 + 2/3) / 2
    half = paint(64, 64, [(slice(None), slice(0, 32), "red"), (slice(None), slice(32, 64), "white")])
    items = [
        MultiLabelImage(paint(64, 64, [(*ALL, "red")]), (0,)),
        MultiLabelImage(half, (1,)),
        MultiLabelImage(paint(32, 64, [(*ALL, "blue")]), (1,)),
    ]
    data = Dataset("prompts", items, ("warm", "blue"), class_prompts=((("a red one",), ("a white one",)), (("blue",),)))
    assert evaluate_multilabel(model, processor, data).metrics["mAP"] == pytest.approx((1 + 5 / 6) / 2)
    bad = Dataset("bad", [MultiLabelImage(paint(8, 8, []), (2,))], ("a", "b"))
    with pytest.raises(ValueError, match="dataset 'bad': label 2 is outside the 2 class names"):
        evaluate_multilabel(model, processor, bad)
    with pytest.raises(ValueError, match="dataset 'empty' has no images"):
        evaluate_multilabel(model, processor, Dataset("empty", [], ("a",)))
    tiny, tiny_processor = model_and_processor  # the real tiny model: a fraction
    result = evaluate_multilabel(tiny, tiny_processor, _toy())
    assert 0 <= result.metrics["mAP"] <= 1


def test_coco_multilabel(coco: dict[str, Path], tmp_path: Path) -> None:
    data = read_coco_multilabel(coco["instances"], coco["images"])
    assert data.classnames == ("car", "red circle", "dog")  # category ids 3, 7, 18 ascending
    # image 1: dog, car (its crowd "red circle" is skipped); image 2: the 4-px-wide red circle counts (no box
    # filter for presence), car; image 3 is not on disk
    assert [(item.image.name, item.labels) for item in data.items] == [("a.png", (0, 2)), ("b.png", (0, 1))]
    assert data.skipped == {"crowd_box": 1, "missing_image": 1}
    assert len(read_coco_multilabel(coco["instances"], coco["images"], max_images=1)) == 1
    raw = json.loads(coco["instances"].read_text())
    raw["annotations"] = [a for a in raw["annotations"] if a["image_id"] != 2]
    raw["annotations"][0]["iscrowd"] = 1  # image 1 keeps only car
    (tmp_path / "i.json").write_text(json.dumps(raw))
    data = read_coco_multilabel(tmp_path / "i.json", coco["images"])
    assert [item.labels for item in data.items] == [(0,)]
    assert data.skipped == {"crowd_box": 2, "image_without_label": 1, "missing_image": 1}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["annotations"][0].update(category_id=99), r"annotations\[0\]\.category_id = 99"),
        (lambda d: d["annotations"][1].update(image_id=42), r"annotations\[1\]\.image_id = 42 is not an image id"),
        (lambda d: d["annotations"][2].pop("category_id"), r"annotations\[2\] lacks 'category_id'"),
        (lambda d: d.pop("categories"), "needs a 'categories' list"),
        # a repeated image id dropped one image and scored the other with both label sets (mAP 0.556 → 0.444)
        (lambda d: d["images"].append({"id": 2, "file_name": "a.png"}), r"images\[3\]\.id = 2 repeats images\[1\]"),
        (lambda d: d["categories"].append({"id": 18, "name": "cat"}), r"categories\[3\]\.id = 18 repeats"),
        (lambda d: d["annotations"][0].update(category_id=True), r"annotations\[0\]\.category_id = True is not a"),
    ],
)
def test_coco_multilabel_errors(coco: dict[str, Path], tmp_path: Path, edit, message: str) -> None:
    raw = json.loads(coco["instances"].read_text())
    edit(raw)
    (tmp_path / "i.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=f"instances_json: .*{message}"):
        read_coco_multilabel(tmp_path / "i.json", coco["images"])


def test_coco_multilabel_missing_paths(coco: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="instances_json: no such file"):
        read_coco_multilabel(tmp_path / "nope.json", coco["images"])
    with pytest.raises(ValueError, match="image_dir: no such directory"):
        read_coco_multilabel(coco["instances"], tmp_path / "nope")


@pytest.mark.parametrize("labels", ["phrase", "colour", "shape"])
def test_synthetic_multilabel(synth_dir: Path, labels: str) -> None:
    records = read_scenes(synth_dir, "val", 6)
    data = synthetic_multilabel(records, labels)
    names = {"phrase": ALL_PHRASES, "colour": tuple(COLOURS), "shape": tuple(SHAPES)}[labels]
    assert data.classnames == names and data.name == f"synthetic-multilabel-{labels}"
    for record, item in zip(records, data.items):
        objects = record.meta["objects"]
        words = {f"{o['size']} {o['colour']} {o['shape']}" if labels == "phrase" else o[labels] for o in objects}
        assert item.labels == tuple(sorted(names.index(w) for w in words))
    # prompts: every sentence the long captions can say about an object of the class (9 positions)
    assert len(data.class_prompts) == len(names)
    sample = dict(zip(names, data.class_prompts))
    if labels == "phrase":
        assert sample["small red circle"] == (
            (
                tuple(
                    f"A small red circle is {p}."
                    for p in (
                        "in the top left",
                        "at the top",
                        "in the top right",
                        "on the left",
                        "in the centre",
                        "on the right",
                        "in the bottom left",
                        "at the bottom",
                        "in the bottom right",
                    )
                ),
            )
        )
    else:
        (group,) = sample[names[0]]
        assert len(group) == 9 * len(ALL_PHRASES) // len(names)
        assert all(names[0] in sentence.split() for sentence in group)
