"""``loclip-label``: VESL pseudo-labelling of shards or an image folder into new shards.

    loclip-label --shards "data/train-{000000..000099}.tar" --out data/vesl \\
        --captioner /models/llava-1.5-7b-hf --detector /models/owlv2-base-patch16-ensemble --device cuda

Each stage is a model directory (or hub name) or ``python:package.module:factory``, a function called with no
arguments that returns the stage callable (see ``loclip.label.stages``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .captioner import CAPTIONER_KINDS, LONG_PROMPT, SHORT_PROMPT, load_captioner
from .detector import NMS_MODES, OwlDetector
from .inputs import check_not_inside, image_units, shard_units
from .phrases import DEFAULT_MAX_QUERIES, load_phrase_extractor
from .pipeline import LabelConfig, label
from .writer import REGIONS_MODES

PYTHON_PREFIX = "python:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_python_stage(spec: str, name: str) -> Callable[..., Any]:
    """``python:package.module:factory`` → ``factory()``, which must return a callable stage."""
    target = spec[len(PYTHON_PREFIX):]
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--{name} {spec!r}: expected python:package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--{name} {spec!r}: {e}") from e
    stage = factory()
    if not callable(stage):
        raise ValueError(f"--{name} {spec!r}: the factory returned a {type(stage).__name__}, not a callable")
    return stage


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loclip-label",
        description="VESL pseudo-labelling: captioner -> noun phrases -> open-vocabulary detector -> new shards "
        "with regions and captions (DESIGN.md schema). Re-running the same command resumes.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--shards", nargs="+", help="input webdataset shards: paths, brace patterns, globs, a "
                     "directory, pipe:/URLs (as the pretraining loader)")  # fmt: skip
    src.add_argument("--images", help="input image folder (recursive); cut into shards of --shard-size images")
    p.add_argument("--out", required=True, help="output folder: one shard per input shard, same name")
    p.add_argument("--captioner", default="none",
                   help="captioner model directory (transformers image-to-text, LLaVA family or loclip MLLM), "
                   "python:module:factory, or 'none' to take phrases from existing captions (default none)")
    p.add_argument("--captioner-kind", choices=CAPTIONER_KINDS, default="auto",
                   help="how to prompt it (auto: loclip MLLM, chat template, or prompt-free)")
    p.add_argument("--long-prompt", default=LONG_PROMPT, help=f"prompt for the long caption ({LONG_PROMPT!r})")
    p.add_argument("--short-prompt", default=SHORT_PROMPT, help=f"prompt for the short caption ({SHORT_PROMPT!r})")
    p.add_argument("--long-tokens", type=int, default=256, help="max new tokens of a long caption")
    p.add_argument("--short-tokens", type=int, default=48, help="max new tokens of a short caption")
    p.add_argument("--detector", required=True,
                   help="OWLv2 / OWL-ViT model directory or hub name, or python:module:factory")
    p.add_argument("--threshold", type=float, default=0.1, help="detection score threshold (default 0.1)")
    p.add_argument("--nms", choices=NMS_MODES, default="global",
                   help="global: one phrase per object; class: per phrase; none (default global)")
    p.add_argument("--nms-iou", type=float, default=0.5, help="NMS IoU threshold (default 0.5)")
    p.add_argument("--max-detections", type=int, default=50, help="regions kept per image (default 50)")
    p.add_argument("--phrases", default="auto",
                   help="auto (spaCy en_core_web_sm if installed, else the rule-based chunker), rules, a spaCy "
                   "pipeline name, or python:module:factory")
    p.add_argument("--max-queries", type=int, default=DEFAULT_MAX_QUERIES, help="detector queries per image")
    p.add_argument("--phrases-from-existing", action="store_true",
                   help="also take phrases from the samples' existing captions")
    p.add_argument("--regions", choices=REGIONS_MODES, default="add",
                   help="existing regions: add (keep them, add new non-overlapping ones), fill (label only "
                   "samples without regions), replace (default add)")
    p.add_argument("--dedupe-iou", type=float, default=0.7, help="IoU at which a generated box duplicates an "
                   "existing one (--regions add)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, help="images per model call (default 8)")
    p.add_argument("--shard-size", type=int, default=1000, help="images per output shard for --images")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="model weights dtype")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    try:
        config = LabelConfig(
            output_dir=args.out, batch_size=args.batch_size, max_queries=args.max_queries,
            regions_mode=args.regions, dedupe_iou=args.dedupe_iou,
            phrases_from_existing=args.phrases_from_existing, progress=not args.no_progress,
        )  # fmt: skip
        units = shard_units(args.shards) if args.shards else image_units(args.images, args.shard_size)
        check_not_inside(units, args.out)  # before loading any model
        if args.captioner.startswith(PYTHON_PREFIX):
            captioner = load_python_stage(args.captioner, "captioner")
        elif args.captioner == "none":
            captioner = None
        else:
            captioner = load_captioner(
                args.captioner, args.captioner_kind, device=args.device, dtype=dtype, long_prompt=args.long_prompt,
                short_prompt=args.short_prompt, long_tokens=args.long_tokens, short_tokens=args.short_tokens,
            )  # fmt: skip
        if args.phrases.startswith(PYTHON_PREFIX):
            phrases = load_python_stage(args.phrases, "phrases")
        else:
            phrases = load_phrase_extractor(args.phrases)
        if args.detector.startswith(PYTHON_PREFIX):
            detector = load_python_stage(args.detector, "detector")
        else:
            detector = OwlDetector.from_pretrained(
                args.detector, device=args.device, dtype=dtype, threshold=args.threshold, nms=args.nms,
                nms_iou=args.nms_iou, max_detections=args.max_detections,
            )  # fmt: skip
    except ValueError as e:
        print(f"loclip-label: error: {e}", file=sys.stderr)
        return 2
    summary = label(units, config, captioner, phrases, detector)
    print(json.dumps({k: summary[k] for k in ("complete", "shards", "images", "generated_regions", "skipped",
                                               "throughput_this_run")}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
