"""Region classification: ground-truth boxes, embedded by the Prompter or RoIAlign, against class-name prompts.

Reported: top-1 over all regions (frequent classes dominate) and mean per-class accuracy (every class
weighs the same), both needed on long-tailed data such as COCO.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loclip.encoder import LoclipModel, LoclipProcessor

from .data import Dataset, RegionImage
from .embed import classifier_weights, embed_regions
from .metrics import mean_per_class_accuracy, top1_accuracy
from .prompts import DEFAULT_TEMPLATES, check_templates
from .report import TaskResult
from .zeroshot import check_labels


def evaluate_region_classification(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[RegionImage],
    method: str = "prompter",
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    batch_size: int = 32,
    progress: bool = False,
) -> TaskResult:
    """Classify every region of ``data`` among ``data.classnames``; ``method`` is ``"prompter"`` or ``"roialign"``."""
    data.require_items("regions")
    templates = check_templates(templates)
    targets = torch.tensor([r.label for item in data.items for r in item.regions])
    check_labels(targets, len(data.classnames), data.name)
    weights = classifier_weights(model, processor, data.classnames, templates, progress=progress)
    scores = embed_regions(model, processor, data.items, method, batch_size, progress) @ weights.t()
    metrics = {"top1": top1_accuracy(scores, targets), "mean_per_class": mean_per_class_accuracy(scores, targets)}
    info = {
        "num_images": len(data),
        "num_regions": len(targets),
        "num_classes": len(data.classnames),
        "region_method": method,
        "num_templates": len(templates),
        "skipped": data.skipped,
    }
    return TaskResult("region_cls", data.name, metrics, info)
