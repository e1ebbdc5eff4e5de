"""loclip.eval: the encoder evaluation suite.

Readers (files → ``Dataset``): ``read_coco_instances``, ``read_coco_captions``, ``read_refs``,
``read_image_folder``, and the synthetic world (``synth_data``). Tasks (model, processor, dataset →
``TaskResult``): ``evaluate_zeroshot``, ``evaluate_retrieval``, ``evaluate_region_classification``,
``evaluate_region_retrieval``, ``evaluate_grounding``; ``evaluate_synthetic`` is pretraining's yardstick.
The ``loclip-eval`` command (``cli.main``) runs them and writes JSON and a markdown table.
"""

from .coco import read_coco_captions, read_coco_instances
from .data import CaptionedImage, Dataset, LabelledImage, Region, RegionImage
from .folder import read_image_folder
from .grounding import evaluate_grounding
from .metrics import iou_accuracy, mean_per_class_accuracy, recall_at_k, top1_accuracy, topk_accuracy
from .refcoco import read_refs
from .region_cls import evaluate_region_classification
from .region_retrieval import evaluate_region_retrieval
from .report import TaskResult, markdown_table, write_json_atomic
from .retrieval import evaluate_retrieval
from .synthetic import evaluate_split, evaluate_synthetic
from .zeroshot import evaluate_zeroshot

__all__ = [
    "CaptionedImage",
    "Dataset",
    "LabelledImage",
    "Region",
    "RegionImage",
    "TaskResult",
    "evaluate_grounding",
    "evaluate_region_classification",
    "evaluate_region_retrieval",
    "evaluate_retrieval",
    "evaluate_split",
    "evaluate_synthetic",
    "evaluate_zeroshot",
    "iou_accuracy",
    "markdown_table",
    "mean_per_class_accuracy",
    "read_coco_captions",
    "read_coco_instances",
    "read_image_folder",
    "read_refs",
    "recall_at_k",
    "top1_accuracy",
    "topk_accuracy",
    "write_json_atomic",
]
