"""Zero-shot classification: images against class-name prompts, top-1 / top-5 and mean per-class accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loclip.encoder import LoclipModel, LoclipProcessor

from .data import Dataset, LabelledImage
from .embed import classifier_weights, embed_images
from .metrics import mean_per_class_accuracy, topk_accuracy
from .prompts import DEFAULT_TEMPLATES, check_templates
from .report import TaskResult


def classification_metrics(
    scores: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """``top{k}`` for each k (k capped at the number of classes) and ``mean_per_class``; scores ``[N, C]``."""
    metrics = {f"top{k}": topk_accuracy(scores, targets, min(k, scores.shape[1])) for k in ks}
    metrics["mean_per_class"] = mean_per_class_accuracy(scores, targets)
    return metrics


def check_labels(targets: torch.Tensor, num_classes: int, dataset: str) -> None:
    """``ValueError`` naming the dataset and label when a label is outside ``0..num_classes-1``."""
    bad = (targets < 0) | (targets >= num_classes)
    if bad.any():
        raise ValueError(
            f"dataset {dataset!r}: label {int(targets[bad][0])} is outside the "
            f"{num_classes} class names (0..{num_classes - 1})"
        )


def evaluate_zeroshot(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[LabelledImage],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    batch_size: int = 64,
    progress: bool = False,
) -> TaskResult:
    """Each image is scored against the template-averaged embedding of every class name (cosine)."""
    data.require_items("images")
    templates = check_templates(templates)
    targets = torch.tensor([item.label for item in data.items])
    check_labels(targets, len(data.classnames), data.name)
    weights = classifier_weights(model, processor, data.classnames, templates, progress=progress)
    images = embed_images(model, processor, [item.image for item in data.items], batch_size, progress)
    info = {
        "num_images": len(data),
        "num_classes": len(data.classnames),
        "num_templates": len(templates),
        "skipped": data.skipped,
    }
    return TaskResult("zeroshot", data.name, classification_metrics(images @ weights.t(), targets), info)
