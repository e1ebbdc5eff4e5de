"""``loclip-eval``: evaluate a saved LoclipModel on one or more tasks; results as JSON and a markdown table.

Datasets are read (and checked) before the model is loaded, so a wrong path fails in a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .coco import DEFAULT_MIN_BOX_SIZE, read_coco_captions, read_coco_instances
from .data import Dataset, check_dir
from .embed import LONG_CAPTION_MODES, REGION_METHODS
from .folder import read_classnames, read_image_folder
from .grounding import evaluate_grounding
from .prompts import BARE, DEFAULT_TEMPLATES, read_templates
from .refcoco import read_refs
from .region_cls import evaluate_region_classification
from .region_retrieval import evaluate_region_retrieval
from .report import TaskResult, markdown_table, write_json_atomic
from .retrieval import evaluate_retrieval
from .synth_data import read_scenes, synthetic_captions, synthetic_regions
from .synthetic import summarize, synthetic_results
from .zeroshot import evaluate_zeroshot

TASKS: tuple[str, ...] = ("zeroshot", "retrieval", "region_cls", "region_retrieval", "grounding", "synthetic", "mllm")

EPILOG = """\
datasets per task (a COCO/RefCOCO file wins over --synth-dir when both are given):
  zeroshot          --zeroshot-dir DIR (class sub-folders) [--classnames JSON] [--templates FILE]
  retrieval         --captions-json FILE --image-dir DIR, or --synth-dir (short and long captions)
  region_cls        --instances-json FILE --image-dir DIR, or --synth-dir (all 128 world phrases)
  region_retrieval  --refs-json FILE --refs-image-dir DIR, or --synth-dir
  grounding         --refs-json FILE --refs-image-dir DIR, or --synth-dir (phrases naming one object)
  synthetic         --synth-dir: the four headline figures loclip-pretrain logs, on --synth-split

choices, documented in loclip.eval's modules:
  long captions over the text context are split into sentences and their normalised embeddings averaged
  (--long-captions truncate: cut to the context instead); identical captions/phrases (case and whitespace
  folded) are positives for every image/region that owns them (--strict-captions: only their own);
  ties rank against the query; grounding IoU is computed in original-image pixels after
  post_process_boxes; COCO crowd boxes and boxes under --min-box-size pixels are skipped and counted.

example:
  loclip-eval --model runs/quickstart --task retrieval region_cls grounding \\
      --synth-dir runs/quickstart/synth --out results.json
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loclip-eval", epilog=EPILOG,
        description="Evaluate a saved LoclipModel: zero-shot classification, image-text retrieval, region "
                    "classification, region retrieval, text-to-box grounding, synthetic-world summary.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR",
                   help="directory of a saved LoclipModel and its LoclipProcessor (save_pretrained)")
    p.add_argument("--task", required=True, nargs="+", action="extend", choices=TASKS, metavar="TASK",
                   help=f"one or more of {', '.join(TASKS)} (repeatable)")
    p.add_argument("--out", metavar="JSON", help="write results here (atomically) and the table beside it as .md")
    p.add_argument("--region-method", choices=REGION_METHODS, default="prompter",
                   help="region embeddings for region_cls/region_retrieval: CLOC prompter or RoIAlign baseline")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                   help="images per forward pass (default 32)")
    p.add_argument("--max-samples", type=_positive_int, metavar="N",
                   help="evaluate on the first N images (scenes) of each dataset")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    g = p.add_argument_group("zero-shot / region classification prompts")
    g.add_argument("--zeroshot-dir", metavar="DIR", help="image folder with one sub-folder per class")
    g.add_argument("--classnames", metavar="JSON", help="JSON object {class folder: class name} for --zeroshot-dir")
    g.add_argument("--templates", metavar="FILE",
                   help="prompt templates, one per line with '{}' for the name (default: a built-in set of "
                        f"{len(DEFAULT_TEMPLATES)}; the synthetic world uses bare phrases)")
    g = p.add_argument_group("retrieval (image-text and region-phrase)")
    g.add_argument("--long-captions", choices=LONG_CAPTION_MODES, default="subcaption",
                   help="captions over the text context: average sentence embeddings (default) or truncate")
    g.add_argument("--strict-captions", action="store_true",
                   help="a caption/phrase is a positive for its own image/region only, even if another has the "
                        "identical text")
    g = p.add_argument_group("COCO")
    g.add_argument("--image-dir", metavar="DIR", help="images of --captions-json and --instances-json")
    g.add_argument("--captions-json", metavar="FILE", help="COCO captions file (retrieval)")
    g.add_argument("--instances-json", metavar="FILE", help="COCO instances file (region_cls)")
    g.add_argument("--min-box-size", type=float, default=DEFAULT_MIN_BOX_SIZE, metavar="PX",
                   help=f"skip boxes narrower or lower than this many pixels (default {DEFAULT_MIN_BOX_SIZE:g})")
    g = p.add_argument_group("RefCOCO-style")
    g.add_argument("--refs-json", metavar="FILE", help="refs + annotations + images JSON (region_retrieval, grounding)")
    g.add_argument("--refs-image-dir", metavar="DIR", help="images of --refs-json (default: --image-dir)")
    g.add_argument("--refs-split", metavar="SPLIT", help="keep refs of this split only (e.g. val, testA)")
    g = p.add_argument_group("MLLM (--task mllm: --model is a loclip MLLM directory, scored alone)")
    g.add_argument("--conversations-json", metavar="FILE",
                   help="LLaVA conversation JSON/JSONL (images relative to its folder, or --image-dir): referring "
                        "accuracy (exact phrase) and referring-expression comprehension accuracy at IoU 0.5")
    g.add_argument("--max-new-tokens", type=_positive_int, default=24, metavar="N", help="MLLM answer length")
    g = p.add_argument_group("synthetic world")
    g.add_argument("--synth-dir", metavar="DIR", help="output of loclip-synth (or a quickstart run's synth/)")
    g.add_argument("--synth-split", default="val", metavar="SPLIT",
                   help="split to evaluate (default val; 'novel': held-out pairs)")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _need(args: argparse.Namespace, task: str, *flags: str) -> None:
    missing = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        raise ValueError(f"--task {task} needs {' and '.join(missing)}")


Runner = Callable[[Any, Any], list[TaskResult]]  # (model, processor) -> results


def plan_tasks(args: argparse.Namespace) -> list[Runner]:
    """Read every dataset the tasks need (errors surface here, before the model loads) → runners."""
    kw = dict(batch_size=args.batch_size, progress=not args.no_progress)
    n, method, match = args.max_samples, args.region_method, not args.strict_captions
    templates = read_templates(args.templates) if args.templates else None
    scenes: list = []

    def synth(task: str) -> list:
        _need(args, task, "--synth-dir")
        scenes[:] = scenes or read_scenes(args.synth_dir, args.synth_split, n)
        return scenes

    def refs(task: str) -> Dataset:
        image_dir = args.refs_image_dir or args.image_dir
        if image_dir is None:
            raise ValueError(f"--task {task} with --refs-json needs --refs-image-dir (or --image-dir)")
        return read_refs(args.refs_json, image_dir, args.refs_split, n)

    runners: list[Runner] = []
    for task in dict.fromkeys(args.task):  # each task once, in the order given
        if task == "zeroshot":
            _need(args, task, "--zeroshot-dir")
            names = read_classnames(args.classnames) if args.classnames else None
            data = read_image_folder(args.zeroshot_dir, names, n).require_items("images")
            runners.append(lambda m, p, d=data: [evaluate_zeroshot(m, p, d, templates or DEFAULT_TEMPLATES, **kw)])
        elif task == "retrieval":
            if args.captions_json:
                _need(args, task, "--image-dir")
                sets = [read_coco_captions(args.captions_json, args.image_dir, n).require_items("images")]
            else:
                sets = [synthetic_captions(synth(task)), synthetic_captions(synth(task), long=True)]
            runners.append(lambda m, p, s=sets: [
                evaluate_retrieval(m, p, d, args.long_captions, match, **kw) for d in s])
        elif task == "region_cls":
            if args.instances_json:
                _need(args, task, "--image-dir")
                data = read_coco_instances(args.instances_json, args.image_dir, args.min_box_size, n)
                tpl = templates or DEFAULT_TEMPLATES
            else:
                data, tpl = synthetic_regions(synth(task)), templates or BARE
            data.require_items("regions")
            runners.append(lambda m, p, d=data, t=tpl: [evaluate_region_classification(m, p, d, method, t, **kw)])
        elif task == "region_retrieval":
            data = (refs(task) if args.refs_json else synthetic_regions(synth(task))).require_items("regions")
            runners.append(lambda m, p, d=data: [evaluate_region_retrieval(m, p, d, method, match, **kw)])
        elif task == "grounding":
            data = (refs(task) if args.refs_json else synthetic_regions(synth(task), unique_only=True))
            data.require_items("regions")
            runners.append(lambda m, p, d=data: [evaluate_grounding(m, p, d, **kw)])
        elif task == "mllm":
            _need(args, task, "--conversations-json")
            if len(set(args.task)) > 1:
                raise ValueError("--task mllm scores an MLLM directory and cannot be combined with encoder tasks")
            runners.append(_mllm_runner(args))
        else:  # synthetic
            synth(task)  # read now, so that a bad --synth-dir fails before the model loads
            runners.append(lambda m, p: _synthetic(m, p, args, **kw))
    return runners


def _synthetic(
    model: Any, processor: Any, args: argparse.Namespace, batch_size: int, progress: bool
) -> list[TaskResult]:
    results = synthetic_results(model, processor, args.synth_dir, args.synth_split, args.max_samples, batch_size,
                                args.region_method, progress)
    info = {"split": args.synth_split, "num_scenes": results[0].info["num_images"], "region_method": args.region_method}
    return [TaskResult("synthetic", f"synthetic:{args.synth_split}", summarize(results), info)]


def _mllm_runner(args: argparse.Namespace) -> Runner:
    """Referring accuracy and REC@0.5 of a loclip MLLM on a conversation file (see loclip.mllm.evaluate)."""
    from loclip.mllm.data import load_records
    from loclip.mllm.evaluate import evaluate_records

    path = Path(args.conversations_json)
    if not path.is_file():
        raise ValueError(f"--conversations-json: no such file {str(path)!r}")
    records = load_records(path)
    root = Path(args.image_dir) if args.image_dir else path.parent
    limit = args.max_samples or 200

    def run(model: Any, processor: Any) -> list[TaskResult]:
        metrics = evaluate_records(model, processor, records, root, limit, args.max_new_tokens)
        info = {"num_refer": int(metrics.pop("n_refer")), "num_ground": int(metrics.pop("n_ground"))}
        return [TaskResult("mllm", str(path), metrics, info)]

    return run


def check_model_dir(path: str) -> None:
    """``ValueError`` unless ``path`` is a directory with a ``config.json`` (a ``save_pretrained`` output)."""
    if not (check_dir(path, "--model") / "config.json").is_file():
        raise ValueError(f"--model: {path!r} has no config.json (not a save_pretrained directory)")


def _load_saved(path: str, device: str, auto_class: Any, expected: type, what: str) -> tuple[Any, Any]:
    """A saved model of class ``expected`` (eval mode, on ``device``) and its processor, via the Auto classes."""
    from transformers import AutoProcessor

    check_model_dir(path)
    model = auto_class.from_pretrained(path)
    if not isinstance(model, expected):
        raise TypeError(f"--model: {path!r} holds a {type(model).__name__}, not a {what}")
    return model.to(device).eval(), AutoProcessor.from_pretrained(path)


def load_model(path: str, device: str) -> tuple[Any, Any]:
    """A saved LoclipModel and its processor (importing loclip.encoder registers the Auto classes)."""
    from transformers import AutoModel

    from loclip.encoder import LoclipModel

    return _load_saved(path, device, AutoModel, LoclipModel, "LoclipModel")


def load_mllm(path: str, device: str) -> tuple[Any, Any]:
    """A saved loclip MLLM and its processor (importing loclip.mllm registers the Auto classes)."""
    from transformers import AutoModelForImageTextToText

    from loclip.mllm import LoclipLlavaForConditionalGeneration

    return _load_saved(path, device, AutoModelForImageTextToText, LoclipLlavaForConditionalGeneration, "loclip MLLM")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_model_dir(args.model)
        runners = plan_tasks(args)
        loader = load_mllm if "mllm" in args.task else load_model
        model, processor = loader(args.model, args.device)
        results = [r for run in runners for r in run(model, processor)]
    except (ValueError, TypeError) as e:
        print(f"loclip-eval: error: {e}", file=sys.stderr)
        return 2
    table = markdown_table(results)
    print(table, end="")
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k not in ("no_progress",)}
        write_json_atomic(args.out, {"model": args.model, "settings": settings,
                                     "results": [r.to_dict() for r in results]})
        Path(args.out).with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
