"""``EvalPlan``: what ``loclip-eval`` evaluates and on which data, checked once, when it is built.

``loclip.eval.plan.plan_tasks(plan)`` reads the datasets it names and returns the runners. Errors about the
plan name its fields (``synth_dir``, ``seg_classes``); the command nests it as ``--plan.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from loclip.core.recipe import CheckedConfig, NonNegativeFloat, NonNegativeInt, PositiveInt, option
from loclip.encoder.choices import RegionMethod
from loclip.synth.world import Split

from .coco import DEFAULT_MIN_BOX_SIZE
from .detection import DETECTION_METHODS, DetectionMethod
from .embed import LongCaptions
from .prompts import DEFAULT_TEMPLATES
from .synth_data import LabelSet

Task = Literal[
    "zeroshot",
    "retrieval",
    "region_cls",
    "region_retrieval",
    "grounding",
    "segmentation",
    "multilabel",
    "detection",
    "synthetic",
    "mllm",
]
TASKS: tuple[str, ...] = get_args(Task)

# sections of --help, one per kind of dataset
PROMPTS = "zero-shot / region classification prompts"
RETRIEVAL = "retrieval (image-text and region-phrase)"
COCO = "COCO"
REFS = "RefCOCO-style"
SEG = "segmentation masks (ADE20K / COCO-Stuff style PNGs)"
DETECTION = "open-vocabulary detection (COCO mAP / AP50)"
MLLM = "MLLM (task mllm: the model is a loclip MLLM directory, scored alone)"
SYNTH = "synthetic world"


@dataclass(kw_only=True)
class EvalPlan(CheckedConfig):
    """The tasks, the datasets each reads (a COCO/RefCOCO file or the ``seg_*`` folders win over ``synth_dir``
    when both are given) and how they run. Task by task: ``loclip.eval.plan``."""

    task: list[Task] = option(help="one or more tasks")
    region_method: RegionMethod = option(
        "prompter", "region embeddings for region_cls/region_retrieval: CLOC prompter or RoIAlign baseline"
    )
    batch_size: PositiveInt = option(32, "images per forward pass")
    max_samples: PositiveInt | None = option(None, "evaluate on the first N images (scenes) of each dataset")
    progress: bool = option(True, "tqdm progress bars")
    zeroshot_dir: str | None = option(None, "image folder with one sub-folder per class", group=PROMPTS)
    classnames: str | None = option(None, "JSON object {class folder: class name} for zeroshot_dir", group=PROMPTS)
    templates: str | None = option(
        None,
        "prompt templates, one per line with '{}' for the name (default: a built-in "
        f"set of {len(DEFAULT_TEMPLATES)}; the synthetic world uses bare phrases)",
        group=PROMPTS,
    )
    long_captions: LongCaptions = option(
        "subcaption", "captions over the text context: average sentence embeddings or truncate", group=RETRIEVAL
    )
    strict_captions: bool = option(
        False,
        "a caption/phrase is a positive for its own image/region only, even if another has the identical text",
        group=RETRIEVAL,
    )
    image_dir: str | None = option(None, "images of captions_json and instances_json", group=COCO)
    captions_json: str | None = option(None, "COCO captions file (retrieval)", group=COCO)
    instances_json: str | None = option(None, "COCO instances file (region_cls, multilabel)", group=COCO)
    min_box_size: NonNegativeFloat = option(
        DEFAULT_MIN_BOX_SIZE, "skip boxes narrower or lower than this many pixels", group=COCO
    )
    refs_json: str | None = option(None, "refs + annotations + images JSON (region_retrieval, grounding)", group=REFS)
    refs_image_dir: str | None = option(None, "images of refs_json (default: image_dir)", group=REFS)
    refs_split: str | None = option(None, "keep refs of this split only (e.g. val, testA)", group=REFS)
    seg_image_dir: str | None = option(None, "images to segment (.jpg, .jpeg, .png, .webp, .bmp)", group=SEG)
    seg_mask_dir: str | None = option(None, "one mask PNG per image, named by the image's stem", group=SEG)
    seg_classes: str | None = option(
        None,
        "class list: a text file, one name per line (line i: mask value i), or a JSON object {mask value: name}",
        group=SEG,
    )
    seg_ignore_index: NonNegativeInt = option(255, "mask value of unlabelled pixels (not counted)", group=SEG)
    seg_reduce_zero_label: bool = option(
        False, "ADE20K: mask value 0 is unlabelled and value v is line v-1 of the text class list", group=SEG
    )
    detection_methods: list[DetectionMethod] = option(
        help="detection: head (the box head's best cells, rescored), ground (one box per query), windows (sliding "
        "windows scored by RoIAlign: the baseline for any encoder)",
        default_factory=lambda: list(DETECTION_METHODS),
        group=DETECTION,
    )
    detection_labels: LabelSet = option(
        "colour_shape",
        "detection queries on synth_dir: colour_shape (64 pairs: 'red circle', every object it names), phrase "
        "(the 128 size colour shape phrases), colour or shape",
        group=DETECTION,
    )
    conversations_json: str | None = option(
        None,
        "LLaVA conversation JSON/JSONL (images relative to its folder, or image_dir): referring accuracy "
        "(exact phrase) and referring-expression comprehension accuracy at IoU 0.5",
        group=MLLM,
    )
    max_new_tokens: PositiveInt = option(24, "MLLM answer length", group=MLLM)
    synth_dir: str | None = option(None, "output of loclip-synth (or a quickstart run's synth/)", group=SYNTH)
    synth_split: Split = option("val", "split to evaluate ('novel': held-out pairs)", group=SYNTH)
    labels: LabelSet = option(
        "colour",
        "classes of the segmentation and multilabel tasks on synth_dir: the 128 "
        "phrases (size colour shape), the 64 colour-shape pairs, the 8 colours or the 8 shapes",
        group=SYNTH,
    )
