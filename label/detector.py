"""Open-vocabulary detection with transformers OWLv2 / OWL-ViT (NMS: ``loclip.encoder.boxes.nms``).

``OwlDetector`` runs ``Owlv2ForObjectDetection`` or ``OwlViTForObjectDetection`` (anything returning
``logits [B, P, Q]`` and ``pred_boxes [B, P, 4]`` normalised cxcywh) and leaves the geometry to the
processor's own ``post_process_grounded_object_detection(target_sizes=(height, width))``: OWLv2 predicts in
its padded square and scales by the long side, OWL-ViT in its stretched frame and scales per axis, so boxes
come back in original-image pixels for both. Each box is labelled by the query it scores highest for
(padded query slots are masked out first), kept above ``threshold``, clipped to the image, and thinned by NMS.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, Literal, get_args

import torch
from PIL import Image

from loclip.encoder import boxes as B
from loclip.encoder.boxes import nms

from .stages import Detection

NmsMode = Literal["global", "class", "none"]
NMS_MODES: tuple[str, ...] = get_args(NmsMode)


class OwlDetector:
    """Zero-shot detection of per-image text queries.

    Args:
        model: an ``Owlv2ForObjectDetection`` / ``OwlViTForObjectDetection`` (or a callable with that output).
        processor: its ``Owlv2Processor`` / ``OwlViTProcessor``.
        threshold: minimum score (sigmoid of the best query logit) to keep a box.
        nms: ``"global"`` (boxes of any phrase suppress each other: one phrase per object), ``"class"`` (only
            boxes of the same phrase), ``"none"``.
        nms_iou: IoU above which NMS suppresses.
        max_candidates: boxes above threshold entering NMS per image (highest scores), bounding its cost.
        max_detections: boxes kept per image after NMS.
        min_size: boxes narrower or lower than this many pixels (after clipping to the image) are dropped.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        threshold: float = 0.1,
        nms: NmsMode = "global",
        nms_iou: float = 0.5,
        max_candidates: int = 300,
        max_detections: int = 50,
        min_size: float = 1.0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not (isinstance(threshold, (int, float)) and 0.0 <= threshold < 1.0):
            raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
        if nms not in NMS_MODES:
            raise ValueError(f"nms must be one of {NMS_MODES}, got {nms!r}")
        if not (isinstance(nms_iou, (int, float)) and 0.0 < nms_iou <= 1.0):
            raise ValueError(f"nms_iou must be a number in (0, 1], got {nms_iou!r}")
        for name, value in (("max_candidates", max_candidates), ("max_detections", max_detections)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.model, self.processor = model, processor
        self.threshold, self.nms, self.nms_iou = float(threshold), nms, float(nms_iou)
        if not (isinstance(min_size, (int, float)) and min_size >= 0):
            raise ValueError(f"min_size must be a number >= 0, got {min_size!r}")
        self.max_candidates, self.max_detections, self.min_size = max_candidates, max_detections, float(min_size)
        self.device, self.dtype = torch.device(device), dtype

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs: Any,
    ) -> OwlDetector:
        """Load an OWLv2 / OWL-ViT checkpoint directory (or hub name) and its processor."""
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        processor = AutoProcessor.from_pretrained(path, trust_remote_code=False)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(path, dtype=dtype, trust_remote_code=False)
        model = model.to(device).eval()
        return cls(model, processor, device=device, dtype=dtype, **kwargs)

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", "") or type(self.model).__name__
        return f"OwlDetector({name!r}, threshold={self.threshold}, nms={self.nms!r}, nms_iou={self.nms_iou})"

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], queries: Sequence[Sequence[str]]) -> list[list[Detection]]:
        """Per image, ``Detection``s (pixel xyxy of that image), highest score first; images without
        queries get none and are not run through the model."""
        if len(images) != len(queries):
            raise ValueError(f"got {len(images)} images but {len(queries)} query lists")
        out: list[list[Detection]] = [[] for _ in images]
        todo = [i for i, q in enumerate(queries) if len(q)]
        if not todo:
            return out
        batch_images = [images[i] for i in todo]
        batch_queries = [list(queries[i]) for i in todo]
        inputs = self.processor(text=batch_queries, images=batch_images, return_tensors="pt", truncation=True)
        inputs = {
            k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device) for k, v in inputs.items()
        }
        outputs = self.model(**inputs)
        logits = outputs.logits.float().cpu()  # [b, P, Qmax]
        counts = torch.tensor([len(q) for q in batch_queries])
        valid = torch.arange(logits.shape[-1])[None] < counts[:, None]  # [b, Qmax]: padding queries are " "
        logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
        masked = SimpleNamespace(logits=logits, pred_boxes=outputs.pred_boxes.float().cpu())
        sizes = [(im.height, im.width) for im in batch_images]
        results = self.processor.post_process_grounded_object_detection(
            masked, threshold=self.threshold, target_sizes=sizes
        )
        for i, result, size, phrases in zip(todo, results, sizes, batch_queries):
            out[i] = self._select(result["boxes"], result["scores"], result["labels"], size, phrases)
        return out

    def _select(
        self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, size: tuple[int, int], phrases: list[str]
    ) -> list[Detection]:
        """Clip, drop boxes under ``min_size`` (and empty ones), keep the best ``max_candidates``, NMS, keep
        ``max_detections``."""
        boxes = B.clip_to_size(boxes.double(), size)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= self.min_size).all(dim=1) & (B.box_area(boxes) > 0)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        top = torch.sort(scores, descending=True, stable=True).indices[: self.max_candidates]
        boxes, scores, labels = boxes[top], scores[top], labels[top]
        if self.nms != "none":
            kept = nms(boxes, scores, self.nms_iou, labels if self.nms == "class" else None)
            boxes, scores, labels = boxes[kept], scores[kept], labels[kept]
        return [
            Detection(tuple(box), float(score), phrases[int(label)])  # type: ignore[arg-type]
            for box, score, label in zip(boxes.tolist()[: self.max_detections], scores.tolist(), labels.tolist())
        ]
