"""What ``loclip-eval`` runs: its datasets read and checked first, then one runner per task.

``plan_tasks(options)`` takes the command's options (``loclip.cli.evaluate.EvalCommand``: ``task``,
``synth_dir``, ``captions_json``, ...), reads every dataset the tasks need, so that a wrong path fails before
the model loads, and returns runners ``(model, processor) -> [TaskResult]``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loclip.core import model_dir

from .coco import read_coco_captions, read_coco_instances, read_coco_multilabel
from .data import Dataset, SegmentedImage
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
    synthetic_multilabel,
    synthetic_regions,
    synthetic_segmentation,
)
from .synthetic import summarize, synthetic_results
from .zeroshot import evaluate_zeroshot


def _need(options: Any, task: str, *flags: str) -> None:
    missing = [f for f in flags if getattr(options, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        raise ValueError(f"--task {task} needs {' and '.join(missing)}")


Runner = Callable[[Any, Any], list[TaskResult]]  # (model, processor) -> results


def plan_tasks(options: Any) -> list[Runner]:
    """Read every dataset the tasks need (errors surface here, before the model loads) → runners."""
    kw = dict(batch_size=options.batch_size, progress=not options.no_progress)
    n, method, match = options.max_samples, options.region_method, not options.strict_captions
    templates = read_templates(options.templates) if options.templates else None
    scenes: list = []

    def synth(task: str) -> list:
        _need(options, task, "--synth-dir")
        scenes[:] = scenes or read_scenes(options.synth_dir, options.synth_split, n)
        return scenes

    def refs(task: str) -> Dataset:
        image_dir = options.refs_image_dir or options.image_dir
        if image_dir is None:
            raise ValueError(f"--task {task} with --refs-json needs --refs-image-dir (or --image-dir)")
        return read_refs(options.refs_json, image_dir, options.refs_split, n)

    runners: list[Runner] = []
    for task in dict.fromkeys(options.task):  # each task once, in the order given
        if task == "zeroshot":
            _need(options, task, "--zeroshot-dir")
            names = read_classnames(options.classnames) if options.classnames else None
            data = read_image_folder(options.zeroshot_dir, names, n).require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_zeroshot(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "retrieval":
            if options.captions_json:
                _need(options, task, "--image-dir")
                sets = [read_coco_captions(options.captions_json, options.image_dir, n).require_items("images")]
            else:
                sets = [synthetic_captions(synth(task)), synthetic_captions(synth(task), long=True)]
            runners.append(lambda m, p, s=sets: [
                evaluate_retrieval(m, p, d, options.long_captions, match, **kw) for d in s])
        elif task == "region_cls":
            if options.instances_json:
                _need(options, task, "--image-dir")
                data = read_coco_instances(options.instances_json, options.image_dir, options.min_box_size, n)
                tpl = templates or DEFAULT_TEMPLATES
            else:
                data, tpl = synthetic_regions(synth(task)), templates or BARE
            data.require_items("regions")
            runners.append(lambda m, p, d=data, t=tpl: [evaluate_region_classification(m, p, d, method, t, **kw)])
        elif task == "region_retrieval":
            data = (refs(task) if options.refs_json else synthetic_regions(synth(task))).require_items("regions")
            runners.append(lambda m, p, d=data: [evaluate_region_retrieval(m, p, d, method, match, **kw)])
        elif task == "grounding":
            data = (refs(task) if options.refs_json else synthetic_regions(synth(task), unique_only=True))
            data.require_items("regions")
            runners.append(lambda m, p, d=data: [evaluate_grounding(m, p, d, **kw)])
        elif task == "segmentation":
            data = _segmentation_data(options, synth).require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_segmentation(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "multilabel":
            if options.instances_json:
                _need(options, task, "--image-dir")
                data = read_coco_multilabel(options.instances_json, options.image_dir, n)
            else:
                data = synthetic_multilabel(synth(task), options.labels)
            data.require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_multilabel(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "mllm":
            _need(options, task, "--conversations-json")
            if len(set(options.task)) > 1:
                raise ValueError("--task mllm scores an MLLM directory and cannot be combined with encoder tasks")
            runners.append(_mllm_runner(options))
        else:  # synthetic
            synth(task)  # read now, so that a bad --synth-dir fails before the model loads
            runners.append(lambda m, p: _synthetic(m, p, options, **kw))
    return runners


SEG_FILES = ("--seg-image-dir", "--seg-mask-dir", "--seg-classes")


def _segmentation_data(options: Any, synth: Callable[[str], list]) -> Dataset[SegmentedImage]:
    """Masks on disk when any ``--seg-*`` path is given (all three are then needed), else the synthetic world's
    label maps with the ``--labels`` classes."""
    if any(getattr(options, f[2:].replace("-", "_")) is not None for f in SEG_FILES):
        _need(options, "segmentation", *SEG_FILES)
        return read_masks(options.seg_image_dir, options.seg_mask_dir, options.seg_classes,
                          options.seg_ignore_index, options.seg_reduce_zero_label, options.max_samples)
    if options.synth_dir is None:
        raise ValueError(f"--task segmentation needs {', '.join(SEG_FILES[:2])} and {SEG_FILES[2]}, "
                         "or --synth-dir")
    return synthetic_segmentation(synth("segmentation"), options.labels)


def _synthetic(
    model: Any, processor: Any, options: Any, batch_size: int, progress: bool
) -> list[TaskResult]:
    results = synthetic_results(model, processor, options.synth_dir, options.synth_split, options.max_samples,
                                batch_size, options.region_method, progress)
    info = {"split": options.synth_split, "num_scenes": results[0].info["num_images"],
            "region_method": options.region_method}
    return [TaskResult("synthetic", f"synthetic:{options.synth_split}", summarize(results), info)]


def _mllm_runner(options: Any) -> Runner:
    """Referring accuracy and REC@0.5 of a loclip MLLM on a conversation file (see loclip.mllm.evaluate)."""
    from loclip.mllm.records import load_records

    from .mllm_referring import evaluate_records

    path = Path(options.conversations_json)
    if not path.is_file():
        raise ValueError(f"--conversations-json: no such file {str(path)!r}")
    records = load_records(path)
    root = Path(options.image_dir) if options.image_dir else path.parent
    limit = options.max_samples or 200

    def run(model: Any, processor: Any) -> list[TaskResult]:
        metrics = evaluate_records(model, processor, records, root, limit, options.max_new_tokens)
        info = {"num_refer": int(metrics.pop("n_refer")), "num_ground": int(metrics.pop("n_ground"))}
        return [TaskResult("mllm", str(path), metrics, info)]

    return run


ENCODER_TYPES = {"loclip": "a LoclipModel, from loclip-pretrain; score a loclip MLLM with --task mllm"}
MLLM_TYPES = {"loclip_llava": "a loclip MLLM, from loclip-finetune"}


def check_model_dir(path: str, mllm: bool = False) -> None:
    """``ValueError`` unless ``path`` is a saved loclip encoder (an MLLM with ``mllm``) whose files are safe to
    load: its config.json, model_type and safetensors headers (``loclip.core.model_dir``), nothing built yet."""
    model_dir.check_model_dir(path, MLLM_TYPES if mllm else ENCODER_TYPES, "--model")


def _load_saved(path: str, device: str, auto_class: Any, expected: dict[str, str]) -> tuple[Any, Any]:
    """A saved model of a type in ``expected`` (eval mode, on ``device``) and its processor, checked by
    ``loclip.core.model_dir`` (missing, unexpected or wrongly shaped weights are errors)."""
    model = model_dir.load_model_dir(path, auto_class, expected, "--model")
    return model.to(device).eval(), model_dir.load_processor_dir(path, "--model")


def load_model(path: str, device: str) -> tuple[Any, Any]:
    """A saved LoclipModel and its processor (importing loclip.encoder registers the Auto classes)."""
    from transformers import AutoModel

    import loclip.encoder  # noqa: F401

    return _load_saved(path, device, AutoModel, ENCODER_TYPES)


def load_mllm(path: str, device: str) -> tuple[Any, Any]:
    """A saved loclip MLLM and its processor (importing loclip.mllm registers the Auto classes)."""
    from transformers import AutoModelForImageTextToText

    import loclip.mllm  # noqa: F401

    return _load_saved(path, device, AutoModelForImageTextToText, MLLM_TYPES)
