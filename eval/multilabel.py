"""Zero-shot multi-label classification: which classes are in the image, ranked by image–text cosine.

Every image embedding is scored against every class (``embed.class_scores``: template ensemble, best
synonym group); per class the images are ranked by that score and ``mAP`` averages the classes' average
precision over the classes present in at least one image (``metrics.mean_average_precision``). It needs
the image-level embedding to hold *every* object, not just the most salient one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from loclip.encoder import LoclipModel, LoclipProcessor

from .data import Dataset, MultiLabelImage
from .embed import class_scores, class_text_weights, embed_images, prompt_groups
from .metrics import mean_average_precision
from .prompts import DEFAULT_TEMPLATES, check_templates
from .report import TaskResult


def label_matrix(items: Sequence[MultiLabelImage], num_classes: int, dataset: str) -> torch.Tensor:
    """bool ``[N, C]``: True where the class is in the image; ``ValueError`` naming a label out of range."""
    out = torch.zeros(len(items), num_classes, dtype=torch.bool)
    for i, item in enumerate(items):
        for label in item.labels:
            if not 0 <= label < num_classes:
                raise ValueError(f"dataset {dataset!r}: label {label} is outside the {num_classes} class names")
            out[i, label] = True
    return out


def evaluate_multilabel(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[MultiLabelImage],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    batch_size: int = 64,
    progress: bool = False,
) -> TaskResult:
    """``mAP`` of zero-shot multi-label classification on ``data``; prompts from ``data.class_prompts`` when set,
    else ``templates`` × class names."""
    data.require_items("images")
    positives = label_matrix(data.items, len(data.classnames), data.name)
    groups = prompt_groups(data.classnames, check_templates(templates), data.class_prompts)
    weights, owner = class_text_weights(model, processor, groups, progress=progress)
    images = embed_images(model, processor, [item.image for item in data.items], batch_size, progress)
    scores = class_scores(images, weights, owner, len(data.classnames))
    info = {
        "num_images": len(data),
        "num_classes": len(data.classnames),
        "classes_present": int(positives.any(0).sum()),
        "skipped": data.skipped,
    }
    return TaskResult("multilabel", data.name, {"mAP": mean_average_precision(scores, positives)}, info)
