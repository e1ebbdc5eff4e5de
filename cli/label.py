"""``loclip-label``: VESL pseudo-labelling of shards or an image folder into new shards.

    loclip-label --shards "data/train-{000000..000099}.tar" --label.output_dir data/vesl \\
        --captioner /models/llava-1.5-7b-hf --detector /models/owlv2-base-patch16-ensemble --device cuda

How the run writes its output is the library's ``LabelConfig``, nested as ``--label.*`` (``--label.batch_size``);
the flags it replaced (``--out``, ``--batch-size``, ``--regions``, ``--no-progress``, ...) still work.

Each stage is a model directory (or hub name) or ``python:package.module:factory``, a function called with no
arguments that returns the stage callable (see ``loclip.label.stages``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from loclip.core.recipe import FlagAliases, NonNegativeInt, PositiveInt, UnitFloat, build_parser, option, parse_command
from loclip.core.threads import ThreadSettingError, use_threads
from loclip.label.captioner import LONG_PROMPT, SHORT_PROMPT, CaptionerKind, load_captioner
from loclip.label.detector import NmsMode, OwlDetector
from loclip.label.inputs import check_not_inside, image_units, shard_units
from loclip.label.phrases import load_phrase_extractor
from loclip.label.pipeline import LabelConfig, label
from loclip.label.stages import PYTHON_PREFIX, load_python_stage

INPUT, CAPTIONS, DETECTION = "input", "captions (stage 1)", "phrases and detection (stages 2-3)"


@dataclass(kw_only=True)
class LabelCommand:
    FLAG_ALIASES: ClassVar[FlagAliases] = {
        "--out": "label.output_dir",
        "--batch-size": "label.batch_size",
        "--max-queries": "label.max_queries",
        "--regions": "label.regions_mode",
        "--dedupe-iou": "label.dedupe_iou",
        "--phrases-from-existing": "label.phrases_from_existing",
        "--no-progress": ("label.progress", False),
    }

    shards: list[str] | None = option(
        None,
        "input webdataset shards: paths, brace patterns, globs, a directory, "
        "pipe:/URLs (as the pretraining loader); or --images",
        group=INPUT,
    )
    images: str | None = option(
        None, "input image folder (recursive); cut into shards of --shard-size images", group=INPUT
    )
    shard_size: PositiveInt = option(1000, "images per output shard for --images", group=INPUT)
    label: LabelConfig = option(help="output (loclip.label.LabelConfig)")
    captioner: str = option(
        "none",
        "captioner model directory (transformers image-to-text, LLaVA family or loclip "
        "MLLM), python:module:factory, or 'none' to take phrases from existing captions",
        group=CAPTIONS,
    )
    captioner_kind: CaptionerKind = option(
        "auto", "how to prompt it (auto: loclip MLLM, chat template, or prompt-free)", group=CAPTIONS
    )
    long_prompt: str = option(LONG_PROMPT, "prompt for the long caption", group=CAPTIONS)
    short_prompt: str = option(SHORT_PROMPT, "prompt for the short caption", group=CAPTIONS)
    long_tokens: PositiveInt = option(256, "max new tokens of a long caption", group=CAPTIONS)
    short_tokens: PositiveInt = option(48, "max new tokens of a short caption", group=CAPTIONS)
    detector: str = option(
        help="OWLv2 / OWL-ViT model directory or hub name, or python:module:factory", group=DETECTION
    )
    threshold: UnitFloat = option(0.1, "detection score threshold", group=DETECTION)
    nms: NmsMode = option("global", "global: one phrase per object; class: per phrase; none", group=DETECTION)
    nms_iou: UnitFloat = option(0.5, "NMS IoU threshold", group=DETECTION)
    max_detections: PositiveInt = option(50, "regions kept per image", group=DETECTION)
    phrases: str = option(
        "auto",
        "auto (spaCy en_core_web_sm if installed, else the rule-based chunker), rules, a "
        "spaCy pipeline name, or python:module:factory",
        group=DETECTION,
    )
    device: str | None = option(None, "torch device (default: cuda if available, else cpu)")
    dtype: Literal["float32", "bfloat16", "float16"] = option("float32", "model weights dtype")
    threads: NonNegativeInt = option(0, "torch CPU threads (0: the available cores)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = option("INFO", "logging level")

    def validate(self) -> None:
        if (self.shards is None) == (self.images is None):
            raise ValueError("give the input as --shards or as --images (one of them)")


def parser():
    return build_parser("loclip-label", __doc__, LabelCommand)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    cmd, _ = parse_command(parser(), LabelCommand, list(argv) if argv is not None else None)
    logging.basicConfig(level=cmd.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        use_threads(cmd.threads or None, field="--threads")
    except ThreadSettingError as e:
        print(f"loclip-label: error: {e}", file=sys.stderr)
        return 2
    dtype = getattr(torch, cmd.dtype)
    device = cmd.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        units = shard_units(cmd.shards) if cmd.shards else image_units(cmd.images, cmd.shard_size)
        check_not_inside(units, cmd.label.output_dir)  # before loading any model
        if cmd.captioner.startswith(PYTHON_PREFIX):
            captioner = load_python_stage(cmd.captioner, "captioner")
        elif cmd.captioner == "none":
            captioner = None
        else:
            captioner = load_captioner(
                cmd.captioner,
                cmd.captioner_kind,
                device=device,
                dtype=dtype,
                long_prompt=cmd.long_prompt,
                short_prompt=cmd.short_prompt,
                long_tokens=cmd.long_tokens,
                short_tokens=cmd.short_tokens,
            )
        if cmd.phrases.startswith(PYTHON_PREFIX):
            phrases = load_python_stage(cmd.phrases, "phrases")
        else:
            phrases = load_phrase_extractor(cmd.phrases)
        if cmd.detector.startswith(PYTHON_PREFIX):
            detector = load_python_stage(cmd.detector, "detector")
        else:
            detector = OwlDetector.from_pretrained(
                cmd.detector,
                device=device,
                dtype=dtype,
                threshold=cmd.threshold,
                nms=cmd.nms,
                nms_iou=cmd.nms_iou,
                max_detections=cmd.max_detections,
            )
    except ValueError as e:
        print(f"loclip-label: error: {e}", file=sys.stderr)
        return 2
    summary = label(units, cmd.label, captioner, phrases, detector)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("complete", "shards", "images", "generated_regions", "skipped", "throughput_this_run")
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
