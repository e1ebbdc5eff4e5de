"""What ``loclip-eval`` runs: its datasets read and checked first, then one runner per task.

``plan_tasks(plan)`` takes an ``EvalPlan`` (``loclip.eval.config``: ``task``, ``synth_dir``, ``captions_json``,
...), reads every dataset the tasks need, so that a wrong path fails before the model loads, and returns runners
``(model, processor) -> [TaskResult]``. Its errors name the plan's fields (``task grounding needs synth_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loclip.core import model_dir

from .coco import read_coco_captions, read_coco_instances, read_coco_multilabel
from .config import EvalPlan
from .data import Dataset, SegmentedImage
from .detection import evaluate_detection
from .folder import read_classnames, read_image_folder
from .grounding import evaluate_grounding
from .masks import read_masks
from .multilabel import evaluate_multilabel
from .prompts import BARE, DEFAULT_TEMPLATES, read_templates
from .refcoco import read_refs
from .region_cls import evaluate_region_classification
from .region_retrieval import evaluate_region_retrieval
from .report import TaskResult
from .retrieval import evaluate_retrieval
from .segmentation import evaluate_segmentation
from .synth_data import (
    read_scenes,
    synthetic_captions,
    synthetic_detection,
    synthetic_multilabel,
    synthetic_regions,
    synthetic_segmentation,
)
from .synthetic import summarize, synthetic_results
from .zeroshot import evaluate_zeroshot


def _need(plan: EvalPlan, task: str, *fields: str) -> None:
    missing = [f for f in fields if getattr(plan, f) is None]
    if missing:
        raise ValueError(f"task {task} needs {' and '.join(missing)}")


Runner = Callable[[Any, Any], list[TaskResult]]  # (model, processor) -> results


def plan_tasks(plan: EvalPlan) -> list[Runner]:
    """Read every dataset the tasks need (errors surface here, before the model loads) → runners."""
    kw = dict(batch_size=plan.batch_size, progress=plan.progress)
    n, method, match = plan.max_samples, plan.region_method, not plan.strict_captions
    templates = read_templates(plan.templates) if plan.templates else None
    scenes: list = []

    def synth(task: str) -> list:
        _need(plan, task, "synth_dir")
        scenes[:] = scenes or read_scenes(plan.synth_dir, plan.synth_split, n)
        return scenes

    def refs(task: str) -> Dataset:
        image_dir = plan.refs_image_dir or plan.image_dir
        if image_dir is None:
            raise ValueError(f"task {task} with refs_json needs refs_image_dir (or image_dir)")
        return read_refs(plan.refs_json, image_dir, plan.refs_split, n)

    runners: list[Runner] = []
    for task in dict.fromkeys(plan.task):  # each task once, in the order given
        if task == "zeroshot":
            _need(plan, task, "zeroshot_dir")
            names = read_classnames(plan.classnames) if plan.classnames else None
            data = read_image_folder(plan.zeroshot_dir, names, n).require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_zeroshot(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "retrieval":
            if plan.captions_json:
                _need(plan, task, "image_dir")
                sets = [read_coco_captions(plan.captions_json, plan.image_dir, n).require_items("images")]
            else:
                sets = [synthetic_captions(synth(task)), synthetic_captions(synth(task), long=True)]
            runners.append(
                lambda m, p, s=sets: [evaluate_retrieval(m, p, d, plan.long_captions, match, **kw) for d in s]
            )
        elif task == "region_cls":
            if plan.instances_json:
                _need(plan, task, "image_dir")
                data = read_coco_instances(plan.instances_json, plan.image_dir, plan.min_box_size, n)
                tpl = templates or DEFAULT_TEMPLATES
            else:
                data, tpl = synthetic_regions(synth(task)), templates or BARE
            data.require_items("regions")
            runners.append(lambda m, p, d=data, t=tpl: [evaluate_region_classification(m, p, d, method, t, **kw)])
        elif task == "region_retrieval":
            data = (refs(task) if plan.refs_json else synthetic_regions(synth(task))).require_items("regions")
            runners.append(lambda m, p, d=data: [evaluate_region_retrieval(m, p, d, method, match, **kw)])
        elif task == "grounding":
            data = refs(task) if plan.refs_json else synthetic_regions(synth(task), unique_only=True)
            data.require_items("regions")
            runners.append(lambda m, p, d=data: [evaluate_grounding(m, p, d, **kw)])
        elif task == "segmentation":
            data = _segmentation_data(plan, synth).require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_segmentation(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "multilabel":
            if plan.instances_json:
                _need(plan, task, "image_dir")
                data = read_coco_multilabel(plan.instances_json, plan.image_dir, n)
            else:
                data = synthetic_multilabel(synth(task), plan.labels)
            data.require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_multilabel(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "detection":
            if plan.instances_json:
                _need(plan, task, "image_dir")
                data = read_coco_instances(plan.instances_json, plan.image_dir, plan.min_box_size, n)
                tpl = templates or DEFAULT_TEMPLATES
            else:
                data, tpl = synthetic_detection(synth(task), plan.detection_labels), templates or BARE
            data.require_items("regions")
            runners.append(lambda m, p, d=data, t=tpl: evaluate_detection(m, p, d, t, plan.detection_methods, **kw))
        elif task == "mllm":
            _need(plan, task, "conversations_json")
            if len(set(plan.task)) > 1:
                raise ValueError("task mllm scores an MLLM directory and cannot be combined with encoder tasks")
            runners.append(_mllm_runner(plan))
        else:  # synthetic
            synth(task)  # read now, so that a bad synth_dir fails before the model loads
            runners.append(lambda m, p: _synthetic(m, p, plan, **kw))
    return runners


SEG_FILES = ("seg_image_dir", "seg_mask_dir", "seg_classes")


def _segmentation_data(plan: EvalPlan, synth: Callable[[str], list]) -> Dataset[SegmentedImage]:
    """Masks on disk when any ``seg_*`` path is given (all three are then needed), else the synthetic world's
    label maps with the ``labels`` classes."""
    if any(getattr(plan, f) is not None for f in SEG_FILES):
        _need(plan, "segmentation", *SEG_FILES)
        return read_masks(
            plan.seg_image_dir,
            plan.seg_mask_dir,
            plan.seg_classes,
            plan.seg_ignore_index,
            plan.seg_reduce_zero_label,
            plan.max_samples,
        )
    if plan.synth_dir is None:
        raise ValueError(f"task segmentation needs {', '.join(SEG_FILES[:2])} and {SEG_FILES[2]}, or synth_dir")
    return synthetic_segmentation(synth("segmentation"), plan.labels)


def _synthetic(model: Any, processor: Any, plan: EvalPlan, batch_size: int, progress: bool) -> list[TaskResult]:
    results = synthetic_results(
        model, processor, plan.synth_dir, plan.synth_split, plan.max_samples, batch_size, plan.region_method, progress
    )
    info = {"split": plan.synth_split, "num_scenes": results[0].info["num_images"], "region_method": plan.region_method}
    return [TaskResult("synthetic", f"synthetic:{plan.synth_split}", summarize(results), info)]


def _mllm_runner(plan: EvalPlan) -> Runner:
    """Referring accuracy and REC@0.5 of a loclip MLLM on a conversation file (see loclip.eval.mllm_referring)."""
    from loclip.mllm.records import load_records

    from .mllm_referring import evaluate_records

    path = Path(plan.conversations_json)
    records = load_records(path, "conversations_json")  # no such file, not JSON: an error naming the field
    root = Path(plan.image_dir) if plan.image_dir else path.parent
    limit = plan.max_samples or 200

    def run(model: Any, processor: Any) -> list[TaskResult]:
        metrics = evaluate_records(model, processor, records, root, limit, plan.max_new_tokens)
        info = {"num_refer": int(metrics.pop("n_refer")), "num_ground": int(metrics.pop("n_ground"))}
        return [TaskResult("mllm", str(path), metrics, info)]

    return run


ENCODER_TYPES = {"loclip": "a LoclipModel, from loclip-pretrain; score a loclip MLLM with the mllm task"}
MLLM_TYPES = {"loclip_llava": "a loclip MLLM, from loclip-finetune"}


def check_model_dir(path: str, mllm: bool = False, name: str = "model") -> None:
    """``ValueError`` unless ``path`` is a saved loclip encoder (an MLLM with ``mllm``) whose files are safe to
    load: its config.json, model_type and safetensors headers (``loclip.core.model_dir``), nothing built yet.
    Messages call the folder ``name`` (a command passes its flag)."""
    model_dir.check_model_dir(path, MLLM_TYPES if mllm else ENCODER_TYPES, name)


def _load_saved(path: str, device: str, auto_class: Any, expected: dict[str, str], name: str) -> tuple[Any, Any]:
    """A saved model of a type in ``expected`` (eval mode, on ``device``) and its processor, checked by
    ``loclip.core.model_dir`` (missing, unexpected or wrongly shaped weights are errors naming ``name``)."""
    model = model_dir.load_model_dir(path, auto_class, expected, name)
    return model.to(device).eval(), model_dir.load_processor_dir(path, name)


def load_model(path: str, device: str, name: str = "model") -> tuple[Any, Any]:
    """A saved LoclipModel and its processor (importing loclip.encoder registers the Auto classes)."""
    from transformers import AutoModel

    import loclip.encoder  # noqa: F401

    return _load_saved(path, device, AutoModel, ENCODER_TYPES, name)


def load_mllm(path: str, device: str, name: str = "model") -> tuple[Any, Any]:
    """A saved loclip MLLM and its processor (importing loclip.mllm registers the Auto classes)."""
    from transformers import AutoModelForImageTextToText

    import loclip.mllm  # noqa: F401

    return _load_saved(path, device, AutoModelForImageTextToText, MLLM_TYPES, name)
