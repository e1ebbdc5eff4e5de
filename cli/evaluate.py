"""``loclip-eval``: evaluate a saved LoclipModel on one or more tasks; results as JSON and a markdown table.

Datasets are read (and checked) before the model is loaded, so a wrong path fails in a second.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from loclip.core.recipe import FlagAliases, PositiveInt, build_parser, option, parse_command
from loclip.core.threads import use_threads
from loclip.eval.config import EvalPlan
from loclip.eval.plan import check_model_dir, load_mllm, load_model, plan_tasks
from loclip.eval.report import markdown_table, write_json_atomic

EPILOG = """\
every field of the plan (loclip.eval.config.EvalPlan) is a flag --plan.FIELD; the spellings before it became
the plan's still work (--task, --synth-dir, --seg-classes, --no-progress, ...).

datasets per task (a COCO/RefCOCO file or the seg_* folders win over synth_dir when both are given):
  zeroshot          zeroshot_dir (class sub-folders) [classnames JSON] [templates FILE]
  retrieval         captions_json FILE and image_dir DIR, or synth_dir (short and long captions)
  region_cls        instances_json FILE and image_dir DIR, or synth_dir (all 128 world phrases)
  region_retrieval  refs_json FILE and refs_image_dir DIR, or synth_dir
  grounding         refs_json FILE and refs_image_dir DIR, or synth_dir (phrases naming one object)
  segmentation      seg_image_dir DIR, seg_mask_dir DIR and seg_classes FILE [seg_ignore_index 255]
                    [seg_reduce_zero_label] [templates FILE], or synth_dir (background + the labels classes):
                    mIoU, pixel accuracy, mean class accuracy
  multilabel        instances_json FILE and image_dir DIR (each image's non-crowd categories)
                    [templates FILE], or synth_dir (each scene's labels classes): mAP
  detection         instances_json FILE and image_dir DIR (category names through templates), or synth_dir
                    (detection_labels: colour_shape pairs by default): COCO mAP and AP50 per detection_methods
  synthetic         synth_dir: the four headline figures loclip-pretrain logs, on synth_split
  mllm              conversations_json FILE (--model is a loclip MLLM; no other task with it)

choices, documented in loclip.eval's modules:
  long captions over the text context are split into sentences and their normalised embeddings averaged
  (long_captions truncate: cut to the context instead); identical captions/phrases (case and whitespace
  folded) are positives for every image/region that owns them (strict_captions: only their own);
  ties rank against the query; grounding IoU is computed in original-image pixels after
  post_process_boxes; COCO crowd boxes and boxes under min_box_size pixels are skipped and counted.
  segmentation scores every patch embedding against the class prompts, upsamples bilinearly to the
  original pixels (letterbox padding cut off) and counts one confusion matrix over the dataset; a mask
  is a PNG named like its image (L, P or 16-bit), its values are lines of a text class list (from 0, or
  from 1 with seg_reduce_zero_label, ADE20K's 150 classes) or the keys of a JSON {value: name} list
  (COCO-Stuff); seg_ignore_index pixels are not counted, any other value without a class is an error
  naming the file, images without a mask are skipped and counted. Synthetic classes are prompted in the
  world's own words (its long captions' object sentences; background: one prompt per background colour).

examples:
  loclip-eval --model runs/quickstart --plan.task retrieval region_cls grounding segmentation multilabel \\
      --plan.synth_dir runs/quickstart/synth --out results.json
  loclip-eval --model DIR --plan.task segmentation \\
      --plan.seg_image_dir ADEChallengeData2016/images/validation \\
      --plan.seg_mask_dir ADEChallengeData2016/annotations/validation --plan.seg_classes ade150.txt \\
      --plan.seg_reduce_zero_label
"""


@dataclass(kw_only=True)
class EvalCommand:
    # every field of the plan was a flat flag (--synth-dir) before it became the library's EvalPlan
    FLAG_ALIASES: ClassVar[FlagAliases] = {
        **{
            f"--{f.name.replace('_', '-')}": f"plan.{f.name}"
            for f in dataclasses.fields(EvalPlan)
            if f.name != "progress"
        },
        "--no-progress": ("plan.progress", False),
    }

    model: str = option(help="directory of a saved LoclipModel and its LoclipProcessor (save_pretrained)")
    out: str | None = option(None, "write results here (atomically) and the table beside it as .md")
    device: str | None = option(None, "torch device (default: cuda if available, else cpu)")
    threads: PositiveInt | None = option(None, "torch CPU threads (default: the available cores)")
    plan: EvalPlan = option(help="what to evaluate (loclip.eval.config.EvalPlan)")


def parser():
    return build_parser(
        "loclip-eval",
        "Evaluate a saved LoclipModel: zero-shot classification, image-text retrieval, region "
        "classification, region retrieval, text-to-box grounding, zero-shot semantic segmentation, multi-label "
        "classification, open-vocabulary detection, synthetic-world summary; or a loclip MLLM (task mllm).",
        EvalCommand,
        epilog=EPILOG,
    )


def main(argv: list[str] | None = None) -> int:
    import torch  # here, not at import: --help stays quick

    cmd, _ = parse_command(parser(), EvalCommand, argv)
    device = cmd.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        use_threads(cmd.threads, field="--threads")
        runners = plan_tasks(cmd.plan)  # the plan's fields fit together and its datasets read
        mllm = "mllm" in cmd.plan.task
        check_model_dir(cmd.model, mllm, "--model")  # its files, before anything is built
        model, processor = (load_mllm if mllm else load_model)(cmd.model, device, "--model")
        results = [r for run in runners for r in run(model, processor)]
    except (ValueError, TypeError) as e:
        print(f"loclip-eval: error: {e}", file=sys.stderr)
        return 2
    table = markdown_table(results)
    print(table, end="")
    if cmd.out:
        plan = {k: v for k, v in asdict(cmd.plan).items() if k != "progress"}
        settings = {"model": cmd.model, "out": cmd.out, "device": cmd.device, **plan}
        write_json_atomic(
            cmd.out, {"model": cmd.model, "settings": settings, "results": [r.to_dict() for r in results]}
        )
        Path(cmd.out).with_suffix(".md").write_text(table)
    return 0


def __getattr__(name: str):
    if name in ("Task", "TASKS"):  # until the next release
        warnings.warn(
            f"loclip.cli.evaluate.{name} moved to loclip.eval.config.{name} (the plan owns its tasks)",
            DeprecationWarning,
            stacklevel=2,
        )
        from loclip.eval import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
