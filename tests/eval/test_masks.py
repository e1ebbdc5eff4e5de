"""The real-data mask reader on tiny ADE20K- and COCO-Stuff-style folders written here: class lists, value
lookup, ignore index, skips, and an error naming the file for every mask that does not fit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from eval_helpers import write_mask
from PIL import Image

from loclip.eval import read_masks
from loclip.eval.masks import load_mask, read_class_list


def test_ade_style_reduce_zero_label(ade: dict[str, Path]) -> None:
    data = read_masks(ade["images"], ade["masks"], ade["classes"], reduce_zero_label=True)
    assert data.classnames == ("wall", "building", "sky")
    assert [item.image.name for item in data.items] == ["a.jpg", "b.png"]  # notes.txt is no image
    assert data.skipped == {"missing_mask": 1}  # c.png
    assert data.ignore_index == 255 and data.name == "segmentation:masks"
    a = load_mask(data.items[0].mask, (30, 40))
    # raw 0 ("other") and raw 255 are unlabelled; raw v is line v - 1
    expected = np.full((30, 40), 255)
    expected[:, 20:] = 0
    expected[10:20, :10] = 2
    assert a.dtype == np.int64 and np.array_equal(a, expected)
    assert np.array_equal(load_mask(data.items[1].mask, (50, 20)), np.ones((50, 20)))
    assert len(read_masks(ade["images"], ade["masks"], ade["classes"], max_images=1)) == 1


def test_ade_style_without_reduce_zero_label(ade: dict[str, Path]) -> None:
    # value v is line v: 0 is "wall" now, and 3 names no class
    data = read_masks(ade["images"], ade["masks"], ade["classes"])
    assert np.array_equal(load_mask(data.items[1].mask, (50, 20)), np.full((50, 20), 2))
    with pytest.raises(ValueError, match=r"mask '.*a\.png' holds value 3, which is neither a class"):
        load_mask(data.items[0].mask, (30, 40))


def test_coco_stuff_style_json_class_list(tmp_path: Path) -> None:
    """Sparse ids: classes in value order (0 → 0, 7 → 1, 92 → 2, 181 → 3); 255 unlabelled."""
    write_mask(tmp_path / "masks" / "x.png", np.array([[0, 7, 92], [181, 255, 92]]))
    Image.new("RGB", (3, 2)).save(tmp_path / "x.jpg")
    classes = tmp_path / "stuff.json"
    classes.write_text(json.dumps({"92": "banner", "0": "person", "181": "wood", "7": "train"}))
    data = read_masks(tmp_path, tmp_path / "masks", classes)
    assert data.classnames == ("person", "train", "banner", "wood")
    assert load_mask(data.items[0].mask, (2, 3)).tolist() == [[0, 1, 2], [3, 255, 2]]
    write_mask(tmp_path / "masks" / "x.png", np.array([[0, 8, 92], [181, 255, 92]]))
    with pytest.raises(ValueError, match=r"x\.png' holds value 8, which is neither a class of seg_classes"):
        load_mask(data.items[0].mask, (2, 3))


def test_palette_and_16_bit_masks(tmp_path: Path) -> None:
    classes = tmp_path / "c.txt"
    classes.write_text("a\nb\nc\n")
    Image.new("RGB", (2, 2)).save(tmp_path / "p.png")
    Image.new("RGB", (2, 2)).save(tmp_path / "w.png")
    write_mask(tmp_path / "m" / "p.png", np.array([[0, 1], [2, 255]]), mode="P")  # palette indices
    Image.fromarray(np.array([[2, 1], [0, 255]], dtype=np.uint16)).save(tmp_path / "m" / "w.png")
    data = read_masks(tmp_path, tmp_path / "m", classes)
    assert Image.open(tmp_path / "m" / "p.png").mode == "P"
    assert load_mask(data.items[0].mask, (2, 2)).tolist() == [[0, 1], [2, 255]]
    assert load_mask(data.items[1].mask, (2, 2)).tolist() == [[2, 1], [0, 255]]


def test_bad_masks_name_the_file(ade: dict[str, Path]) -> None:
    data = read_masks(ade["images"], ade["masks"], ade["classes"], reduce_zero_label=True)
    a, b = (item.mask for item in data.items)
    with pytest.raises(ValueError, match=r"mask '.*b\.png' is 20x50 pixels but its image is 50x20 pixels"):
        load_mask(b, (20, 50))
    Image.new("RGB", (40, 30), (1, 1, 1)).save(a.path)
    with pytest.raises(ValueError, match=r"mask '.*a\.png' is mode RGB: expected one integer per pixel"):
        load_mask(a, (30, 40))
    write_mask(a.path, np.full((30, 40), 4))  # the list has 3 classes: raw 1..3
    with pytest.raises(ValueError, match=r"mask '.*a\.png' holds value 4, which is neither a class"):
        load_mask(a, (30, 40))
    a.path.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"mask '.*a\.png' cannot be read"):
        load_mask(a, (30, 40))


@pytest.mark.parametrize(
    ("text", "suffix", "kwargs", "message"),
    [
        ("", ".txt", {}, "names no class"),
        ('["wall", "sky"]', ".json", {}, "expected a JSON object"),
        ('{"one": "wall"}', ".json", {}, "key 'one' is not a mask value"),
        ("{not json", ".json", {}, "is not valid JSON"),
        ('{"-1": "wall"}', ".json", {}, "key '-1' is not a mask value"),
        ('{"0": "wall", "255": "sky"}', ".json", {}, "seg_ignore_index 255 is also a class value"),
        ("a\nb\nc\n", ".txt", {"ignore_index": 1}, "seg_ignore_index 1 is also a class"),
        # reduce_zero_label: values are 1..3, so ignore 0 is no class value, but class index 0 is "a"
        ("a\nb\nc\n", ".txt", {"ignore_index": 0, "reduce_zero_label": True}, "is also a class index"),
        ('{"0": "wall", "5": "sky"}', ".json", {"reduce_zero_label": True}, "value 0 is a class of seg_classes"),
        ("a\n", ".txt", {"ignore_index": None, "reduce_zero_label": True}, "needs an ignore index"),
    ],
)
def test_bad_class_lists(ade: dict[str, Path], text: str, suffix: str, kwargs: dict, message: str) -> None:
    classes = ade["root"] / f"classes{suffix}"
    classes.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_masks(ade["images"], ade["masks"], classes, **kwargs)


def test_sparse_ignore_index_cannot_hide_a_class(tmp_path: Path) -> None:
    """Ignore 1 with values {0, 10, 20}: 1 is no class value, but it is class 10's index, whose pixels would
    vanish from the counts."""
    classes = tmp_path / "c.json"
    classes.write_text(json.dumps({"0": "a", "10": "b", "20": "c"}))
    (tmp_path / "m").mkdir()
    with pytest.raises(ValueError, match="seg_ignore_index 1 is also a class index"):
        read_masks(tmp_path, tmp_path / "m", classes, ignore_index=1)
    assert read_class_list(classes) == (("a", "b", "c"), {0: 0, 10: 1, 20: 2})


def test_missing_paths_name_the_flag(ade: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="seg_image_dir: no such directory"):
        read_masks(ade["root"] / "nope", ade["masks"], ade["classes"])
    with pytest.raises(ValueError, match="seg_mask_dir: no such directory"):
        read_masks(ade["images"], ade["root"] / "nope", ade["classes"])
    with pytest.raises(ValueError, match="seg_classes: no such file"):
        read_masks(ade["images"], ade["masks"], ade["root"] / "nope.txt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # line i is value i: dropping a blank line would move "sky" onto value 1
        ("wall\n\nsky\n", r"line 2 is blank; line i names mask value i"),
        ("wall\n   \nsky\n", r"line 2 is blank"),
    ],
)
def test_a_blank_line_inside_a_text_class_list_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    classes = tmp_path / "c.txt"
    classes.write_text(text)
    with pytest.raises(ValueError, match=rf"seg_classes '.*c\.txt': {message}"):
        read_class_list(classes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"1": "wall", " 1": "sky"}', r"key ' 1' is not a mask value: expected a plain decimal integer 0\.\.65535"),
        ('{"01": "wall"}', "key '01' is not a mask value"),
        ('{"1.0": "wall"}', r"key '1\.0' is not a mask value"),
        ('{"\u0661": "wall"}', "key '.' is not a mask value"),  # an Arabic-Indic one: int() would take it for 1
        ('{"65536": "wall"}', "key '65536' is not a mask value"),
        ('{"1": "wall", "1": "sky"}', "key '1' is given twice"),
        ('{"0": null}', "the name of value 0 must be a non-empty string, got None"),
        ('{"0": 5}', "the name of value 0 must be a non-empty string, got 5"),
        ('{"0": "  "}', "the name of value 0 must be a non-empty string"),
        ("[" * 100_000, "nests its JSON too deeply to read"),
    ],
)
def test_a_json_class_list_gives_each_value_one_named_class(tmp_path: Path, text: str, message: str) -> None:
    classes = tmp_path / "c.json"
    classes.write_text(text)
    with pytest.raises(ValueError, match=f"seg_classes:? '.*c\\.json':? {message}"):
        read_class_list(classes)


def test_class_lists_tolerate_a_byte_order_mark_and_trailing_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_bytes("\ufeffwall\nsky\n\n  \n".encode())
    assert read_class_list(tmp_path / "c.txt") == (("wall", "sky"), {0: 0, 1: 1})
    (tmp_path / "c.json").write_bytes('\ufeff{"3": " sky ", "0": "wall"}'.encode())
    assert read_class_list(tmp_path / "c.json") == (("wall", "sky"), {0: 0, 3: 1})


def test_a_mask_larger_than_its_image_is_refused_from_its_header(ade: dict[str, Path]) -> None:
    """A mask whose header says 8000 x 8000 (64 megapixels) for a 40 x 30 image: refused before decoding. Its
    pixel data is cut short, so a decode attempt would fail with another message."""
    data = read_masks(ade["images"], ade["masks"], ade["classes"], reduce_zero_label=True)
    mask = data.items[0].mask
    big = io.BytesIO()
    Image.new("1", (8000, 8000)).save(big, format="PNG")
    mask.path.write_bytes(big.getvalue()[:200])
    with pytest.raises(ValueError, match=r"a\.png' is 8000x8000 pixels but its image is 40x30 pixels \(from its head"):
        load_mask(mask, (30, 40))
