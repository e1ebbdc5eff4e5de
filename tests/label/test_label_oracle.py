"""Oracle stages on the synthetic world: coordinates survive every step of VESL.

The captioner says the scene's own captions; the rule-based chunker turns them into queries; the detector is
the real ``OwlDetector`` (processor, query masking, ``post_process_grounded_object_detection``, clipping,
NMS) around a scripted model that "predicts" each object's ground-truth box in OWLv2's padded-square frame,
scored by how well each query names it, plus near-duplicates (for NMS) and a below-threshold box. The written
regions, and the boxes the pretraining loader then feeds the model (mapped back to pixels), must match the
ground truth with IoU >= 0.9 — for the square scenes and for the same scenes on non-square canvases.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from label_helpers import owl_processor
from PIL import Image

from loclip.encoder import boxes as B
from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor
from loclip.label import Captions, LabelConfig, OwlDetector, RulePhrases, label, shard_units
from loclip.pretrain.data import DataConfig, build_train_loader
from loclip.shards.write import ShardWriter, json_bytes
from loclip.synth import SceneConfig, build_tokenizer, generate_scene, write_split
from loclip.synth.shards import encode_png

SEED, SCENES, SIZE = 5, 12, 64
CANVASES = [(96, 64, 16, 0), (64, 100, 0, 30), (80, 72, 9, 5)]  # (width, height, dx, dy) per scene, cycled


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _digest(image: Image.Image) -> str:
    return hashlib.sha1(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


class Oracle:
    """Captions and detections from the scene description: ``truth`` maps an image digest to its captions and
    its ground-truth ``(pixel box, phrase)`` list."""

    def __init__(self) -> None:
        self.truth: dict[str, tuple[Captions, list[tuple[list[float], str]]]] = {}
        self.detector = OwlDetector(self._model, owl_processor(32), threshold=0.1)
        self._pending: list[tuple[tuple[int, int], list[tuple[list[float], str]]]] = []

    def add(self, image: Image.Image, captions: Captions, regions: list[tuple[list[float], str]]) -> None:
        self.truth[_digest(image)] = (captions, regions)

    def caption(self, images: list[Image.Image]) -> list[Captions]:
        return [self.truth[_digest(im)][0] for im in images]

    def detect(self, images, queries):
        self._pending = [((im.height, im.width), self.truth[_digest(im)][1]) for im in images]
        self._queries = [list(q) for q in queries]
        return self.detector(images, queries)

    def _model(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, **_: object) -> SimpleNamespace:
        """OWL-shaped outputs: ``logits [b, P, Qmax]``, ``pred_boxes [b, P, 4]`` (cxcywh in the padded square)."""
        b, q_max = pixel_values.shape[0], input_ids.shape[0] // pixel_values.shape[0]
        rows = []
        for (size, regions), queries in zip(self._pending, self._queries):
            slots: list[tuple[list[float], list[float]]] = []
            for box, phrase in regions:
                words = set(phrase.split())
                score = [8.0 if q == phrase else 0.0 if set(q.split()) < words else -12.0 for q in queries]
                slots.append((box, score))
                slots.append(([box[0] + 1, box[1], box[2] + 1, box[3] - 1], [s - 3.0 for s in score]))  # for NMS
            slots.append(([1.0, 1.0, 9.0, 9.0], [-5.0] * len(queries)))  # below the 0.1 threshold everywhere
            rows.append((size, slots))
        patches = max(len(s) for _, s in rows)
        logits = torch.full((b, patches, q_max), -20.0)
        pred = torch.full((b, patches, 4), 0.5)
        for i, (size, slots) in enumerate(rows):
            for p, (box, score) in enumerate(slots):
                frame = B.pixel_to_model([box], size, image_size=max(size))  # OWLv2: pad to a square, normalise
                pred[i, p] = B.xyxy_to_cxcywh(frame)[0]
                logits[i, p, : len(score)] = torch.tensor(score)
        return SimpleNamespace(logits=logits, pred_boxes=pred)


def _write_canvas_shard(path: Path, oracle: Oracle) -> list[tuple[str, tuple[int, int], list]]:
    """The scenes pasted on non-square canvases (boxes shifted), written with captions but no regions."""
    truth = []
    with ShardWriter(path) as shard:
        for index in range(SCENES):
            scene = generate_scene("train", index, SEED, SceneConfig(image_size=SIZE))
            w, h, dx, dy = CANVASES[index % len(CANVASES)]
            canvas = np.full((h, w, 3), 90, dtype=np.uint8)
            canvas[dy : dy + SIZE, dx : dx + SIZE] = scene.image
            regions = [([o.box[0] + dx, o.box[1] + dy, o.box[2] + dx, o.box[3] + dy], o.phrase) for o in scene.objects]
            image = Image.fromarray(canvas)
            oracle.add(image, Captions(scene.text.caption, scene.text.long_caption), regions)
            shard.add(f"canvas-{index:04d}", {"png": encode_png(canvas), "json": json_bytes({"caption": "a canvas"})})
            truth.append((f"canvas-{index:04d}", (h, w), regions))
        shard.commit()
    return truth


def _match(found: list[tuple[list[float], str]], truth: list[tuple[list[float], str]], where: str) -> None:
    """Every true region has a found one with its phrase (when given) and IoU >= 0.9, one to one."""
    assert len(found) == len(truth), f"{where}: {len(found)} regions for {len(truth)} objects"
    left = list(found)
    for box, phrase in truth:
        ious = [
            B.box_iou(torch.tensor(box, dtype=torch.float64), torch.tensor(f, dtype=torch.float64)).item()
            if (p is None or p == phrase)
            else 0.0
            for f, p in left
        ]
        best = int(np.argmax(ious))
        assert ious[best] >= 0.9, f"{where}: {phrase} {box} best IoU {ious[best]:.3f} among {left}"
        left.pop(best)


def _loader_boxes(out: Path, image_size: int) -> dict[str, list[list[float]]]:
    """Each sample's region boxes as the pretraining loader delivers them, mapped back to image pixels."""
    processor = LoclipProcessor(LoclipImageProcessor(image_size=image_size), build_tokenizer())
    config = DataConfig(
        train_shards=str(out),
        image_size=image_size,
        max_text_length=16,
        batch_size=SCENES,
        num_workers=0,
        num_subcaptions=1,
        num_regions=8,
    )
    loader = build_train_loader(config, processor)
    batch = next(iter(loader))
    loader.close()
    assert loader.skip_counts() == {}
    pixels = processor.post_process_boxes(batch["boxes"], batch["original_sizes"], box_mask=batch["box_mask"])
    return {key: p.tolist() for key, p in zip(batch["keys"], pixels)}


def _written(out: Path, name: str) -> dict[str, dict]:
    with tarfile.open(out / name) as tar:
        return {
            m.name.split(".")[0]: json.loads(tar.extractfile(m).read())  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.endswith(".json")
        }


def test_oracle_square_scenes(tmp_path: Path) -> None:
    """The synthetic world's own shards (regions replaced by the generated ones)."""
    write_split(tmp_path / "synth", "train", SCENES, SEED, SceneConfig(image_size=SIZE), shard_size=5)
    oracle = Oracle()
    truth = {}
    for index in range(SCENES):
        scene = generate_scene("train", index, SEED, SceneConfig(image_size=SIZE))
        regions = [(list(map(float, o.box)), o.phrase) for o in scene.objects]
        oracle.add(Image.fromarray(scene.image), Captions(scene.text.caption, scene.text.long_caption), regions)
        truth[scene.key] = regions
    out = tmp_path / "out"
    config = LabelConfig(str(out), batch_size=4, regions_mode="replace", progress=False)
    summary = label(
        shard_units(str(tmp_path / "synth" / "train")), config, oracle.caption, RulePhrases(), oracle.detect
    )
    assert summary["images"] == SCENES and summary["generated_regions"] == sum(map(len, truth.values()))

    records = {k: v for name in sorted(summary_sizes(out)) for k, v in _written(out, name).items()}
    for key, regions in truth.items():
        written = [(r["bbox"], r["phrase"]) for r in records[key]["regions"]]
        _match(written, regions, f"{key} written")
    for key, boxes in _loader_boxes(out, SIZE).items():
        _match([(b, None) for b in boxes], truth[key], f"{key} through the loader")


def test_oracle_non_square_canvases(tmp_path: Path) -> None:
    """The same scenes on wide and tall canvases: OWLv2's square padding, the writer and the loader's
    letterbox all map the boxes back to the same pixels."""
    oracle = Oracle()
    (tmp_path / "in").mkdir()
    truth = _write_canvas_shard(tmp_path / "in" / "canvas-000000.tar", oracle)
    out = tmp_path / "out"
    label(
        shard_units(str(tmp_path / "in")),
        LabelConfig(str(out), batch_size=5, progress=False),
        oracle.caption,
        RulePhrases(),
        oracle.detect,
    )
    records = _written(out, "canvas-000000.tar")
    for key, _, regions in truth:
        assert records[key]["caption"] == "a canvas"
        _match([(r["bbox"], r["phrase"]) for r in records[key]["regions"]], regions, f"{key} written")
    delivered = _loader_boxes(out, 48)  # a smaller model frame than any canvas: real letterboxing
    for key, _, regions in truth:
        _match([(b, None) for b in delivered[key]], regions, f"{key} through the loader")


def summary_sizes(out: Path) -> dict[str, int]:
    return json.loads((out / "sizes.json").read_text())
