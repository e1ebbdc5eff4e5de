"""Detection candidates → thresholded, per-phrase NMS'd detections in pixels: the post-processing step the
processors expose (``post_process_object_detection``, ``post_process_grounded_object_detection``)."""

from __future__ import annotations

import torch

from .boxes import model_to_pixel, nms

DEFAULT_THRESHOLD = 0.1
DEFAULT_NMS_IOU = 0.5
DEFAULT_MAX_DETECTIONS = 100


def check_threshold(threshold: float, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


def post_process_detections(
    scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    threshold: float = DEFAULT_THRESHOLD,
    target_sizes: torch.Tensor | list | None = None,
    image_size: int | None = None,
    nms_iou: float = DEFAULT_NMS_IOU,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
) -> list[dict[str, torch.Tensor]]:
    """Candidates → per image ``{"scores" [M], "labels" [M] (query index), "boxes" [M, 4]}``, best first.

    Keeps candidates scoring at least ``threshold`` with a box of some area, suppresses those overlapping a
    better box of the same query above ``nms_iou`` and keeps ``max_detections``. Boxes are pixel xyxy of each
    original image when ``target_sizes`` ``[B, 2]`` (height, width) is given (with the model's ``image_size``,
    the letterbox side), else normalised model-frame xyxy.
    """
    threshold = check_threshold(threshold)
    check_threshold(nms_iou, "nms_iou")
    if scores.dim() != 3 or pred_boxes.shape != (*scores.shape, 4):
        raise ValueError(
            f"scores must be [B, Q, K] and pred_boxes [B, Q, K, 4]; got {tuple(scores.shape)}, "
            f"{tuple(pred_boxes.shape)}"
        )
    if target_sizes is not None:
        sizes = torch.as_tensor(target_sizes).reshape(-1, 2).tolist()
        if len(sizes) != scores.shape[0]:
            raise ValueError(f"target_sizes has {len(sizes)} sizes for {scores.shape[0]} images")
        if image_size is None:
            raise ValueError("image_size (the letterbox side) is needed to map boxes to target_sizes")
    results = []
    for i in range(scores.shape[0]):
        s, boxes = scores[i].detach().float().cpu(), pred_boxes[i].detach().float().cpu()
        labels = torch.arange(s.shape[0])[:, None].expand_as(s).reshape(-1)
        s, boxes = s.reshape(-1), boxes.reshape(-1, 4)
        ok = (s >= threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (s > 0)
        s, boxes, labels = s[ok], boxes[ok], labels[ok]
        kept = nms(boxes, s, nms_iou, labels)[:max_detections]
        s, boxes, labels = s[kept], boxes[kept], labels[kept]
        if target_sizes is not None:
            boxes = model_to_pixel(boxes, tuple(int(v) for v in sizes[i]), image_size).float()
        results.append({"scores": s, "labels": labels, "boxes": boxes})
    return results
