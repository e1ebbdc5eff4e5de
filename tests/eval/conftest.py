"""Fixtures for the eval tests: a tiny saved LoclipModel, tiny COCO/RefCOCO files with real PNGs, a synthetic split,
an ADE20K-style mask folder, and a hand-made colour model whose embeddings are known by construction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from eval_helpers import CONTEXT, ColourModel, write_mask
from PIL import Image

from loclip.encoder import LoclipImageProcessor, LoclipModel, LoclipProcessor, tiny_config
from loclip.synth import build_tokenizer, write_split


@pytest.fixture(scope="session")
def model_and_processor() -> tuple[LoclipModel, LoclipProcessor]:
    torch.manual_seed(0)
    tokenizer = build_tokenizer(model_max_length=CONTEXT)
    model = LoclipModel(tiny_config(vocab_size=len(tokenizer), max_text_length=CONTEXT)).eval()
    return model, LoclipProcessor(LoclipImageProcessor(image_size=64), tokenizer)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, model_and_processor) -> Path:
    out = tmp_path_factory.mktemp("model")
    model, processor = model_and_processor
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_split(out, "val", 20, seed=0)
    return out


def write_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """A real PNG of ``size`` = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def coco(tmp_path: Path) -> dict[str, Path]:
    """Three listed images (the third is missing on disk), instances with a crowd and a tiny box, captions,
    refs, and a class-folder tree."""
    images_dir = tmp_path / "images"
    write_png(images_dir / "a.png", (80, 60), (200, 30, 30))
    write_png(images_dir / "b.png", (50, 100), (30, 30, 200))
    images = [
        {"id": 1, "file_name": "a.png", "width": 80, "height": 60},
        {"id": 2, "file_name": "b.png", "width": 50, "height": 100},
        {"id": 3, "file_name": "missing.png", "width": 40, "height": 40},
    ]
    categories = [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}, {"id": 7, "name": "red circle"}]
    instances = [
        {"id": 10, "image_id": 1, "category_id": 18, "bbox": [10, 10, 30, 20], "iscrowd": 0, "area": 600},
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [0, 0, 80.4, 60], "iscrowd": 0, "area": 4800},
        {"id": 12, "image_id": 1, "category_id": 7, "bbox": [5, 5, 40, 40], "iscrowd": 1, "area": 1600},
        {"id": 13, "image_id": 2, "category_id": 7, "bbox": [20, 20, 4, 30], "iscrowd": 0, "area": 120},
        {"id": 14, "image_id": 2, "category_id": 3, "bbox": [5, 50, 40, 40], "iscrowd": 0, "area": 1600},
        {"id": 15, "image_id": 3, "category_id": 3, "bbox": [5, 5, 20, 20], "iscrowd": 0, "area": 400},
    ]
    captions = [
        {"id": 101, "image_id": 1, "caption": "a red square"},
        {"id": 100, "image_id": 1, "caption": " a large red square on the left "},
        {"id": 102, "image_id": 2, "caption": "a blue square"},
        {"id": 103, "image_id": 3, "caption": "a green circle"},
    ]
    refs = [
        {"ref_id": 0, "image_id": 1, "ann_id": 10, "split": "val", "sentences": [{"sent": "the red square"}]},
        {"ref_id": 1, "image_id": 1, "ann_id": 10, "split": "val", "sentences": ["red thing on the left"]},
        {"ref_id": 2, "image_id": 2, "ann_id": 14, "split": "val", "sentences": [{"sent": "blue square below"}]},
        {"ref_id": 3, "image_id": 2, "split": "testA", "bbox": [0, 0, 10, 10], "sentences": ["top left corner"]},
        {"ref_id": 4, "image_id": 3, "ann_id": 15, "split": "val", "sentences": ["gone"]},
    ]
    folder = tmp_path / "classes"
    for name, colour in (("red_square", (220, 30, 30)), ("blue_circle", (30, 80, 230))):
        for i in range(3):
            write_png(folder / name / f"{i}.png", (32 + 8 * i, 32), colour)
    (folder / "red_square" / "notes.txt").write_text("not an image")
    return {
        "images": images_dir,
        "instances": write_json(
            tmp_path / "instances.json", {"images": images, "annotations": instances, "categories": categories}
        ),
        "captions": write_json(tmp_path / "captions.json", {"images": images, "annotations": captions}),
        "refs": write_json(tmp_path / "refs.json", {"images": images, "annotations": instances, "refs": refs}),
        "folder": folder,
    }


@pytest.fixture(scope="session")
def colour_model() -> tuple[ColourModel, LoclipProcessor]:
    tokenizer = build_tokenizer(model_max_length=CONTEXT)
    image_processor = LoclipImageProcessor(image_size=64, image_mean=(0.5,) * 3, image_std=(0.5,) * 3)
    return ColourModel(tokenizer), LoclipProcessor(image_processor, tokenizer)


@pytest.fixture
def ade(tmp_path: Path) -> dict[str, Path]:
    """An ADE20K-style folder under ``tmp_path/ade``: images a.jpg (40x30), b.png (20x50), c.png (no mask); L-mode
    masks where 0 is "other" and v is line v of a 3-line class list (from 1), 255 unlabelled."""
    root = tmp_path / "ade"
    write_png(root / "images" / "b.png", (20, 50), (30, 30, 200))
    write_png(root / "images" / "c.png", (16, 16), (30, 200, 30))
    Image.new("RGB", (40, 30), (200, 30, 30)).save(root / "images" / "a.jpg")
    (root / "images" / "notes.txt").write_text("not an image")
    a = np.zeros((30, 40), dtype=np.uint8)
    a[:, 20:] = 1  # wall
    a[10:20, :10] = 3  # sky
    a[0, 0] = 255
    b = np.full((50, 20), 2, dtype=np.uint8)  # building
    write_mask(root / "masks" / "a.png", a)
    write_mask(root / "masks" / "b.png", b)
    classes = root / "classes.txt"
    classes.write_text("wall\nbuilding\nsky\n")
    return {"images": root / "images", "masks": root / "masks", "classes": classes, "root": root}
