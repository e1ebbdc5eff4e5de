"""Text → box grounding with the encoder's box head: accuracy at IoU >= 0.5 and mean IoU.

Compared in original-image pixels: predictions are mapped back through ``processor.post_process_boxes``
(as a user of the model would see them) and the dataset's boxes stay as given. The letterbox is a
uniform scale, so IoU is the same in the model frame, except that a prediction reaching into the
padding is clamped to the image first.
"""

from __future__ import annotations

from loclip.encoder import LoclipModel, LoclipProcessor
from loclip.encoder.boxes import box_iou

from .data import Dataset, RegionImage
from .embed import ground_phrases
from .metrics import iou_accuracy
from .report import TaskResult

IOU_THRESHOLD = 0.5


def evaluate_grounding(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[RegionImage],
    batch_size: int = 32,
    progress: bool = False,
) -> TaskResult:
    """One query per (region, phrase): the phrase's predicted box against the region's box."""
    data.require_items("regions")
    pred, target = ground_phrases(model, processor, data.items, batch_size, progress)
    if len(target) == 0:
        raise ValueError(f"dataset {data.name!r} has regions but no phrases to ground")
    metrics = {"acc@0.5": iou_accuracy(pred, target, IOU_THRESHOLD), "mean_iou": box_iou(pred, target).mean().item()}
    info = {
        "num_images": len(data),
        "num_queries": len(target),
        "frame": "original-image pixels",
        "skipped": data.skipped,
    }
    return TaskResult("grounding", data.name, metrics, info)
