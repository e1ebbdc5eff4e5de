"""Open-vocabulary detection: every class name is a phrase query on every image; COCO mAP and AP50 (pycocotools).

Methods (``loclip.encoder.detection``), one result each:
- ``head``: the dense box head's best cells per phrase, each box scored by its Prompter region embedding against
  the phrase (``(1 + cos) / 2``), NMS per phrase: the encoder as a detector;
- ``ground``: ``ground()``'s single box per phrase, scored the same way (one box per query: the recall a
  one-answer grounding head leaves);
- ``windows``: sliding windows over the patch grid scored by RoIAlign region embeddings, the baseline any
  CLIP-style encoder (the ``clip`` variant) can run.

A class's ground truth is every region labelled with it (on the synthetic world: every object its phrase names).
Boxes are compared in original-image pixels. Detections: ``threshold`` 0 (AP needs the whole ranking), at most
100 per image (COCO's maxDets).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Literal, get_args

import torch

from loclip.encoder import LoclipModel, LoclipProcessor
from loclip.encoder.detection import DEFAULT_CANDIDATES, head_candidates, window_candidates
from loclip.encoder.detection_post import DEFAULT_MAX_DETECTIONS, DEFAULT_NMS_IOU, post_process_detections

from .data import Dataset, RegionImage
from .embed import batches, classifier_weights
from .report import TaskResult

DetectionMethod = Literal["head", "ground", "windows"]
DETECTION_METHODS: tuple[str, ...] = get_args(DetectionMethod)


@torch.no_grad()
def detect_images(
    model: LoclipModel,
    processor: LoclipProcessor,
    images: Sequence,
    queries: torch.Tensor,
    method: DetectionMethod = "head",
    threshold: float = 0.0,
    batch_size: int = 16,
    progress: bool = False,
    nms_iou: float = DEFAULT_NMS_IOU,
) -> list[dict[str, torch.Tensor]]:
    """Per image ``{"scores", "labels" (row of ``queries``), "boxes" (pixel xyxy)}`` for normalised query
    embeddings ``queries`` ``[Q, D]`` shared by all images."""
    if method not in DETECTION_METHODS:
        raise ValueError(f"detection method must be one of {list(DETECTION_METHODS)}, got {method!r}")
    vision, out = model.vision_model, []
    for chunk in batches(images, batch_size, progress, f"detection ({method})"):
        inputs = processor(images=list(chunk))
        enc = vision.encode(inputs["pixel_values"].to(model.device))
        phrases = queries.to(model.device, model.dtype)[None].expand(len(chunk), -1, -1)
        if method == "windows":
            cand = window_candidates(vision, enc, phrases)
        else:
            cand = head_candidates(vision, enc, phrases, DEFAULT_CANDIDATES if method == "head" else 1)
        out += post_process_detections(
            cand.scores,
            cand.pred_boxes,
            threshold,
            inputs["original_sizes"],
            processor.image_processor.image_size,
            nms_iou,
            DEFAULT_MAX_DETECTIONS,
        )
    return out


def coco_ap(items: Sequence[RegionImage], detections: Sequence[dict], num_classes: int) -> dict[str, float]:
    """COCO bbox ``mAP`` (IoU 0.5:0.95) and ``AP50`` of pixel-xyxy detections against the items' regions, by
    pycocotools; classes without any ground truth are left out of the mean, as COCO does."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, (item, dets) in enumerate(zip(items, detections, strict=True)):
        images.append({"id": i})
        for region in item.regions:
            x1, y1, x2, y2 = region.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": region.label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        found = zip(dets["scores"].tolist(), dets["labels"].tolist(), dets["boxes"].tolist())
        for score, label, (x1, y1, x2, y2) in found:
            results.append({"image_id": i, "category_id": label, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    if not annotations:
        raise ValueError("detection needs ground-truth boxes, and the dataset has none")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        categories = [{"id": c} for c in range(num_classes)]
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        if not results:
            return {"mAP": 0.0, "AP50": 0.0}
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"mAP": max(float(evaluator.stats[0]), 0.0), "AP50": max(float(evaluator.stats[1]), 0.0)}


def evaluate_detection(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[RegionImage],
    templates: Sequence[str],
    methods: Sequence[DetectionMethod] = DETECTION_METHODS,
    batch_size: int = 16,
    progress: bool = False,
) -> list[TaskResult]:
    """One ``TaskResult`` per method: mAP and AP50 over the dataset's classes, each queried through ``templates``
    (their normalised embeddings averaged)."""
    data.require_items("regions")
    if not data.classnames:
        raise ValueError(f"dataset {data.name!r} has no class names to query")
    queries = classifier_weights(model, processor, data.classnames, templates, progress=progress)
    images = [item.image for item in data.items]
    results = []
    for method in dict.fromkeys(methods):
        dets = detect_images(model, processor, images, queries, method, 0.0, batch_size, progress)
        metrics = coco_ap(data.items, dets, len(data.classnames))
        info = {
            "method": method,
            "num_images": len(data),
            "num_queries": len(data.classnames),
            "num_boxes": sum(len(item.regions) for item in data.items),
            "skipped": data.skipped,
        }
        results.append(TaskResult("detection", f"{data.name}:{method}", metrics, info))
    return results
