"""``loclip-eval``: evaluate a saved LoclipModel on one or more tasks; results as JSON and a markdown table.

Datasets are read (and checked) before the model is loaded, so a wrong path fails in a second.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

from loclip.encoder.choices import RegionMethod
from loclip.eval.coco import DEFAULT_MIN_BOX_SIZE
from loclip.eval.embed import LongCaptions
from loclip.eval.plan import check_model_dir, load_mllm, load_model, plan_tasks
from loclip.eval.prompts import DEFAULT_TEMPLATES
from loclip.eval.report import markdown_table, write_json_atomic
from loclip.eval.synth_data import LabelSet
from loclip.synth.world import Split
from loclip.core.recipe import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    build_parser,
    option,
    parse_command,
)

Task = Literal["zeroshot", "retrieval", "region_cls", "region_retrieval", "grounding", "segmentation", "multilabel",
               "synthetic", "mllm"]
TASKS: tuple[str, ...] = get_args(Task)
# --help sections
PROMPTS = "zero-shot / region classification prompts"
RETRIEVAL = "retrieval (image-text and region-phrase)"
REFS = "RefCOCO-style"
SEG = "segmentation masks (ADE20K / COCO-Stuff style PNGs)"
MLLM = "MLLM (--task mllm: --model is a loclip MLLM directory, scored alone)"
SYNTH = "synthetic world"

EPILOG = """\
datasets per task (a COCO/RefCOCO file or the --seg-* folders win over --synth-dir when both are given):
  zeroshot          --zeroshot-dir DIR (class sub-folders) [--classnames JSON] [--templates FILE]
  retrieval         --captions-json FILE --image-dir DIR, or --synth-dir (short and long captions)
  region_cls        --instances-json FILE --image-dir DIR, or --synth-dir (all 128 world phrases)
  region_retrieval  --refs-json FILE --refs-image-dir DIR, or --synth-dir
  grounding         --refs-json FILE --refs-image-dir DIR, or --synth-dir (phrases naming one object)
  segmentation      --seg-image-dir DIR --seg-mask-dir DIR --seg-classes FILE [--seg-ignore-index 255]
                    [--seg-reduce-zero-label] [--templates FILE], or --synth-dir (background + the --labels classes):
                    mIoU, pixel accuracy, mean class accuracy
  multilabel        --instances-json FILE --image-dir DIR (each image's non-crowd categories)
                    [--templates FILE], or --synth-dir (each scene's --labels classes): mAP
  synthetic         --synth-dir: the four headline figures loclip-pretrain logs, on --synth-split

choices, documented in loclip.eval's modules:
  long captions over the text context are split into sentences and their normalised embeddings averaged
  (--long-captions truncate: cut to the context instead); identical captions/phrases (case and whitespace
  folded) are positives for every image/region that owns them (--strict-captions: only their own);
  ties rank against the query; grounding IoU is computed in original-image pixels after
  post_process_boxes; COCO crowd boxes and boxes under --min-box-size pixels are skipped and counted.
  segmentation scores every patch embedding against the class prompts, upsamples bilinearly to the
  original pixels (letterbox padding cut off) and counts one confusion matrix over the dataset; a mask
  is a PNG named like its image (L, P or 16-bit), its values are lines of a text class list (from 0, or
  from 1 with --seg-reduce-zero-label, ADE20K's 150 classes) or the keys of a JSON {value: name} list
  (COCO-Stuff); --seg-ignore-index pixels are not counted, any other value without a class is an error
  naming the file, images without a mask are skipped and counted. Synthetic classes are prompted in the
  world's own words (its long captions' object sentences; background: one prompt per background colour).

examples:
  loclip-eval --model runs/quickstart --task retrieval region_cls grounding segmentation multilabel \\
      --synth-dir runs/quickstart/synth --out results.json
  loclip-eval --model DIR --task segmentation --seg-image-dir ADEChallengeData2016/images/validation \\
      --seg-mask-dir ADEChallengeData2016/annotations/validation --seg-classes ade150.txt \\
      --seg-reduce-zero-label
"""


@dataclass(kw_only=True)
class EvalCommand:
    model: str = option(help="directory of a saved LoclipModel and its LoclipProcessor (save_pretrained)")
    task: list[Task] = option(help="one or more tasks (repeatable)")
    out: str | None = option(None, "write results here (atomically) and the table beside it as .md")
    region_method: RegionMethod = option("prompter", "region embeddings for region_cls/region_retrieval: CLOC "
                                         "prompter or RoIAlign baseline")
    batch_size: PositiveInt = option(32, "images per forward pass")
    max_samples: PositiveInt | None = option(None, "evaluate on the first N images (scenes) of each dataset")
    device: str | None = option(None, "torch device (default: cuda if available, else cpu)")
    no_progress: bool = option(False, "no tqdm progress bars")
    zeroshot_dir: str | None = option(None, "image folder with one sub-folder per class", group=PROMPTS)
    classnames: str | None = option(None, "JSON object {class folder: class name} for --zeroshot-dir", group=PROMPTS)
    templates: str | None = option(None, "prompt templates, one per line with '{}' for the name (default: a built-in "
                                   f"set of {len(DEFAULT_TEMPLATES)}; the synthetic world uses bare phrases)",
                                   group=PROMPTS)
    long_captions: LongCaptions = option("subcaption", "captions over the text context: average sentence "
                                         "embeddings or truncate", group=RETRIEVAL)
    strict_captions: bool = option(False, "a caption/phrase is a positive for its own image/region only, even if "
                                   "another has the identical text", group=RETRIEVAL)
    image_dir: str | None = option(None, "images of --captions-json and --instances-json", group="COCO")
    captions_json: str | None = option(None, "COCO captions file (retrieval)", group="COCO")
    instances_json: str | None = option(None, "COCO instances file (region_cls, multilabel)", group="COCO")
    min_box_size: NonNegativeFloat = option(DEFAULT_MIN_BOX_SIZE, "skip boxes narrower or lower than this many "
                                            "pixels", group="COCO")
    refs_json: str | None = option(None, "refs + annotations + images JSON (region_retrieval, grounding)",
                                   group=REFS)
    refs_image_dir: str | None = option(None, "images of --refs-json (default: --image-dir)", group=REFS)
    refs_split: str | None = option(None, "keep refs of this split only (e.g. val, testA)", group=REFS)
    seg_image_dir: str | None = option(None, "images to segment (.jpg, .jpeg, .png, .webp, .bmp)", group=SEG)
    seg_mask_dir: str | None = option(None, "one mask PNG per image, named by the image's stem", group=SEG)
    seg_classes: str | None = option(None, "class list: a text file, one name per line (line i: mask value i), "
                                     "or a JSON object {mask value: name}", group=SEG)
    seg_ignore_index: NonNegativeInt = option(255, "mask value of unlabelled pixels (not counted)", group=SEG)
    seg_reduce_zero_label: bool = option(False, "ADE20K: mask value 0 is unlabelled and value v is line v-1 of "
                                         "the text class list", group=SEG)
    conversations_json: str | None = option(
        None, "LLaVA conversation JSON/JSONL (images relative to its folder, or --image-dir): referring accuracy "
        "(exact phrase) and referring-expression comprehension accuracy at IoU 0.5", group=MLLM)
    max_new_tokens: PositiveInt = option(24, "MLLM answer length", group=MLLM)
    synth_dir: str | None = option(None, "output of loclip-synth (or a quickstart run's synth/)", group=SYNTH)
    synth_split: Split = option("val", "split to evaluate ('novel': held-out pairs)", group=SYNTH)
    labels: LabelSet = option("colour", "classes of --task segmentation and multilabel on --synth-dir: the 128 "
                              "phrases (size colour shape), the 8 colours or the 8 shapes", group=SYNTH)


def parser():
    return build_parser(
        "loclip-eval", "Evaluate a saved LoclipModel: zero-shot classification, image-text retrieval, region "
        "classification, region retrieval, text-to-box grounding, zero-shot semantic segmentation, multi-label "
        "classification, synthetic-world summary; or a loclip MLLM (--task mllm).", EvalCommand, epilog=EPILOG)


def main(argv: list[str] | None = None) -> int:
    import torch  # here, not at import: --help stays quick

    cmd, _ = parse_command(parser(), EvalCommand, argv)
    device = cmd.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        runners = plan_tasks(cmd)  # the options fit together and the datasets read
        check_model_dir(cmd.model, mllm="mllm" in cmd.task)  # its files, before anything is built
        loader = load_mllm if "mllm" in cmd.task else load_model
        model, processor = loader(cmd.model, device)
        results = [r for run in runners for r in run(model, processor)]
    except (ValueError, TypeError) as e:
        print(f"loclip-eval: error: {e}", file=sys.stderr)
        return 2
    table = markdown_table(results)
    print(table, end="")
    if cmd.out:
        settings = {k: v for k, v in asdict(cmd).items() if k != "no_progress"}
        write_json_atomic(cmd.out, {"model": cmd.model, "settings": settings,
                                    "results": [r.to_dict() for r in results]})
        Path(cmd.out).with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
