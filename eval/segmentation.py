"""Zero-shot semantic segmentation: every patch embedding is classified against the classes' text embeddings.

As in MaskCLIP / DreamLIP's evaluation, no decoder is trained. Each patch embedding (``get_patch_features``,
the patch tokens mapped into the shared space) is scored against every class (``embed.class_scores``); the
patch-resolution scores are upsampled bilinearly to the model input, the letterbox padding is cut off and
the rest is resized bilinearly to the original image, where each pixel takes its best class. mIoU, pixel
accuracy and mean class accuracy come from one confusion matrix over the whole dataset
(``metrics.segmentation_metrics``); pixels marked ``ignore_index`` are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from loclip.encoder import LoclipModel, LoclipProcessor
from loclip.encoder.boxes import Letterbox

from .data import Dataset, SegmentedImage
from .embed import batches, class_scores, class_text_weights, embed_patches, prompt_groups
from .masks import load_mask
from .metrics import confusion_matrix, per_class_iou, segmentation_metrics
from .prompts import DEFAULT_TEMPLATES, check_templates
from .report import TaskResult


def upsample_scores(scores: torch.Tensor, original_size: tuple[int, int], image_size: int) -> torch.Tensor:
    """Patch-grid class scores ``[h, w, C]`` of one letterboxed image → ``[C, H, W]`` on its original pixels.

    Bilinear to the ``image_size`` model input, the padded bottom/right cut off (``Letterbox``), then bilinear
    to ``original_size`` (height, width).
    """
    height, width = original_size
    box = Letterbox(height, width, image_size)
    grid = scores.permute(2, 0, 1)[None].float()
    full = F.interpolate(grid, size=(image_size, image_size), mode="bilinear", align_corners=False)
    crop = full[..., : box.resized_height, : box.resized_width]
    if crop.shape[-2:] != (height, width):
        crop = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
    return crop[0]


@torch.no_grad()
def predict_masks(
    model: LoclipModel,
    processor: LoclipProcessor,
    images: Sequence,
    weights: torch.Tensor,
    owner: torch.Tensor,
    num_classes: int,
) -> list[torch.Tensor]:
    """Predicted class maps (long ``[H, W]``, original pixels) of a batch of images."""
    patches, sizes = embed_patches(model, processor, images)
    scores = class_scores(patches, weights, owner, num_classes)  # [B, h, w, C]
    image_size = processor.image_processor.image_size
    return [upsample_scores(s, (int(h), int(w)), image_size).argmax(0) for s, (h, w) in zip(scores, sizes)]


def segmentation_classifier(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[SegmentedImage],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The class text embeddings of ``data`` (``embed.class_text_weights``): prompts from ``data.class_prompts``
    when set, else ``templates`` × class names."""
    groups = prompt_groups(data.classnames, check_templates(templates), data.class_prompts)
    return class_text_weights(model, processor, groups, progress=progress)


def evaluate_segmentation(
    model: LoclipModel,
    processor: LoclipProcessor,
    data: Dataset[SegmentedImage],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    batch_size: int = 16,
    progress: bool = False,
    classifier: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> TaskResult:
    """mIoU, pixel_acc and mean_acc of zero-shot segmentation on ``data`` (module docstring); the per-class IoU
    goes to ``info``. ``classifier``: ``segmentation_classifier``'s output when the caller already has it."""
    data.require_items("images")
    weights, owner = classifier or segmentation_classifier(model, processor, data, templates, progress)
    num_classes = len(data.classnames)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for chunk in batches(data.items, batch_size, progress, "segmentation"):
        preds = predict_masks(model, processor, [item.image for item in chunk], weights, owner, num_classes)
        for item, pred in zip(chunk, preds):
            target = torch.from_numpy(np.asarray(load_mask(item.mask, tuple(pred.shape)), dtype=np.int64))
            confusion += confusion_matrix(pred, target, num_classes, data.ignore_index)
    ious = per_class_iou(confusion)
    info = {
        "num_images": len(data),
        "num_classes": num_classes,
        "skipped": data.skipped,
        "class_iou": {name: iou for name, iou in zip(data.classnames, ious) if not math.isnan(iou)},
    }
    return TaskResult("segmentation", data.name, segmentation_metrics(confusion), info)
