"""loclip.eval: the encoder evaluation suite.

Readers (files → ``Dataset``): ``read_coco_instances``, ``read_coco_captions``, ``read_coco_multilabel``,
``read_refs``, ``read_image_folder``, ``read_masks`` (ADE20K / COCO-Stuff style mask PNGs), and the synthetic world
(``synth_data``). Tasks (model, processor, dataset → ``TaskResult``): ``evaluate_zeroshot``,
``evaluate_retrieval``, ``evaluate_region_classification``, ``evaluate_region_retrieval``,
``evaluate_grounding``, ``evaluate_segmentation`` (zero-shot, per patch), ``evaluate_multilabel``;
``evaluate_synthetic`` is pretraining's yardstick.
What to evaluate is an ``EvalPlan`` (tasks, datasets, settings); ``plan.plan_tasks(plan)`` reads its datasets and
returns the runners. The ``loclip-eval`` command (``loclip.cli.evaluate``) nests the plan as ``--plan.*``, runs it
and writes JSON and a markdown table.
"""

from .coco import read_coco_captions, read_coco_instances, read_coco_multilabel
from .config import EvalPlan
from .data import CaptionedImage, Dataset, LabelledImage, MultiLabelImage, Region, RegionImage, SegmentedImage
from .folder import read_image_folder
from .grounding import evaluate_grounding
from .masks import read_masks
from .metrics import (
    average_precision,
    confusion_matrix,
    iou_accuracy,
    mean_average_precision,
    mean_per_class_accuracy,
    recall_at_k,
    segmentation_metrics,
    top1_accuracy,
    topk_accuracy,
)
from .multilabel import evaluate_multilabel
from .refcoco import read_refs
from .region_cls import evaluate_region_classification
from .region_retrieval import evaluate_region_retrieval
from .report import TaskResult, markdown_table, write_json_atomic
from .retrieval import evaluate_retrieval
from .segmentation import evaluate_segmentation
from .synthetic import evaluate_split, evaluate_synthetic
from .zeroshot import evaluate_zeroshot

__all__ = [
    "CaptionedImage",
    "Dataset",
    "EvalPlan",
    "LabelledImage",
    "MultiLabelImage",
    "Region",
    "RegionImage",
    "SegmentedImage",
    "TaskResult",
    "average_precision",
    "confusion_matrix",
    "evaluate_grounding",
    "evaluate_multilabel",
    "evaluate_region_classification",
    "evaluate_region_retrieval",
    "evaluate_retrieval",
    "evaluate_segmentation",
    "evaluate_split",
    "evaluate_synthetic",
    "evaluate_zeroshot",
    "iou_accuracy",
    "markdown_table",
    "mean_average_precision",
    "mean_per_class_accuracy",
    "read_coco_captions",
    "read_coco_instances",
    "read_coco_multilabel",
    "read_image_folder",
    "read_masks",
    "read_refs",
    "recall_at_k",
    "segmentation_metrics",
    "top1_accuracy",
    "topk_accuracy",
    "write_json_atomic",
]
