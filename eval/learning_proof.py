"""The learning-proof benchmark: six encoders, same data, steps and seeds, scored on held-out scenes.

    python -m loclip.eval.learning_proof --out runs/learning_proof --docs docs          # 3 seeds, every variant
    python -m loclip.eval.learning_proof --out runs/quick --seeds 0                     # one seed, for quick use

Variants (``loclip.pretrain.config.apply_variant``): ``clip`` (CLIP loss on the raw caption), ``clip_long``
(CLIP loss on the whole long caption, cut at the text length), ``dreamlip`` (+ DreamLIP multi-positive loss
over K sub-captions), ``dreamlip_sgl`` (+ the sub-caption grouping loss), ``cloc`` (dreamlip + CLOC region
and grounding losses on the Prompter: the full loclip recipe) and ``cloc_roialign`` (the region loss on
RoIAlign features). Each is trained by ``loclip-pretrain`` (the quickstart recipe at ``PROOF_STEPS`` steps;
``--run.seed`` and ``--data.seed`` set to the seed) in its own process under ``OUT/s<seed>/<variant>``, then
evaluated on the synthetic world's val split and its composition split. ``baseline`` always answers the most
common box. A run that finished before (its exported encoder is there) is evaluated again, not retrained.
Writes ``results.json`` (``"encoder"``: the first seed's figures; ``"encoder_seeds"``: ``{variant: {metric:
{"mean", "sd", "n"}}}``; ``"encoder_per_seed"``), ``learning_proof_table.md``, the training curves and the
segmentation maps of one val scene (PNG).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from loclip.encoder.boxes import box_iou

from .proof_stats import Claim, Figures, claims_table, results_table, summarize

METRICS = (
    "region_acc",
    "region_acc_novel",
    "grounding_acc50",
    "long_retrieval_r1",
    "retrieval_r1",
    "object_map",
    "seg_miou",
)
VARIANTS = ("clip", "clip_long", "dreamlip", "dreamlip_sgl", "cloc", "cloc_roialign")
HAS_BOX_HEAD = {"cloc"}
REGION_METHOD = {v: "prompter" if v == "cloc" else "roialign" for v in VARIANTS}
PROOF_STEPS = 400  # the quickstart's 600 would not fit 3 seeds x 6 variants in 30 min on 2 CPU cores
SEG_LABELS = "colour"  # seg_miou's classes: background + the 8 colours (the label set with the most signal here)
CLAIMS = [
    Claim("clip_long", "clip", "long_retrieval_r1", "the long caption names the objects the raw caption omits"),
    Claim("dreamlip", "clip_long", "long_retrieval_r1", "sub-captions cover every sentence, truncation does not"),
    Claim("clip_long", "clip", "object_map", "the image embedding must hold the objects the text names"),
    Claim("dreamlip", "clip_long", "object_map", "as above, for every object"),
    Claim("dreamlip_sgl", "dreamlip", "seg_miou", "the grouping loss trains the patch embeddings"),
    Claim("dreamlip_sgl", "dreamlip", "long_retrieval_r1", "DreamLIP's ablation: + SGL adds to sub-captions"),
    Claim("dreamlip_sgl", "dreamlip", "object_map", "as above, on the image-level object task"),
    Claim("cloc", "clip", "region_acc", "CLOC's region loss makes regions classifiable"),
    Claim("cloc", "clip", "region_acc_novel", "and composes colour and shape for unseen pairs"),
    Claim("cloc", "cloc_roialign", "region_acc", "the Prompter beats RoIAlign features (CLOC's ablation)"),
    Claim("cloc", "cloc_roialign", "region_acc_novel", "as above, on the composition split"),
    Claim("cloc", "baseline", "grounding_acc50", "the box head finds the named object"),
]


def most_common_box(train_boxes: torch.Tensor) -> torch.Tensor:
    """The training box that has IoU >= 0.5 with the most training boxes (the mode under that match).

    train_boxes: ``[N, 4]`` normalised xyxy → ``[4]``.
    """
    hits = (box_iou(train_boxes[:, None], train_boxes[None]) >= 0.5).sum(1)
    return train_boxes[hits.argmax()]


def baseline_grounding(synth_dir: str, max_train: int = 2000, max_eval: int = 200) -> float:
    """Accuracy at IoU 0.5 of always answering the most common training box, on val grounding targets."""
    from loclip.eval.synth_data import read_scenes, synthetic_regions

    def boxes(split: str, limit: int) -> torch.Tensor:
        items = synthetic_regions(read_scenes(synth_dir, split, limit), unique_only=True).items
        rows = []
        for item in items:
            w, h = item.image.size
            rows += [[r.box[0] / w, r.box[1] / h, r.box[2] / w, r.box[3] / h] for r in item.regions]
        return torch.tensor(rows, dtype=torch.float32)

    mode = most_common_box(boxes("train", max_train))
    val = boxes("val", max_eval)
    return (box_iou(mode[None], val) >= 0.5).float().mean().item()


def train_variant(variant: str, run: Path, synth: Path, seed: int, extra: list[str]) -> float:
    """Run ``loclip-pretrain --variant`` into ``run`` in its own process, unless an earlier run with the same
    overrides finished there; returns its training wall seconds (recorded in ``run/proof.json``)."""
    record = run / "proof.json"
    if record.is_file() and (run / "config.json").is_file():
        done = json.loads(record.read_text())
        if done.get("extra") == extra:
            return float(done["seconds"])
    cmd = [
        sys.executable,
        "-m",
        "loclip.cli.pretrain",
        "--variant",
        variant,
        "--output-dir",
        str(run),
        "--synth-dir",
        str(synth),
        "--run.progress",
        "false",
        "--run.resume",
        "false",
        "--run.overwrite",
        "true",
        "--optim.steps",
        str(PROOF_STEPS),
        "--run.seed",
        str(seed),
        "--data.seed",
        str(seed),
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    seconds = time.perf_counter() - start
    record.write_text(json.dumps({"variant": variant, "seed": seed, "seconds": seconds, "extra": extra}) + "\n")
    return seconds


def plot_scene(records: list) -> int:
    """Index (among the val ``records``) of the first scene with at least three objects: the segmentation figure's."""
    return next((i for i, r in enumerate(records) if len(r.meta["objects"]) >= 3), 0)


def evaluate_variant(
    variant: str, run: Path, synth: Path, max_scenes: int, records: list, scene: int
) -> tuple[Figures, np.ndarray]:
    """The variant's figures (``METRICS``) and its predicted class map of val scene ``scene`` (``records``: the
    first ``max_scenes`` val scenes, read once by the caller)."""
    from transformers import AutoModel

    import loclip.encoder  # noqa: F401  (registers the Auto classes)
    from loclip.core.model_dir import load_model_dir, load_processor_dir

    from .multilabel import evaluate_multilabel
    from .segmentation import evaluate_segmentation, predict_masks, segmentation_classifier
    from .synth_data import synthetic_multilabel, synthetic_segmentation
    from .synthetic import evaluate_synthetic

    encoder = {"loclip": "an encoder exported by loclip-pretrain"}
    model = load_model_dir(run, AutoModel, encoder, "--out").eval()  # a run under --out, perhaps an older one
    processor = load_processor_dir(run, "--out")
    metrics: Figures = dict(evaluate_synthetic(model, processor, str(synth), max_scenes, REGION_METHOD[variant]))
    if variant not in HAS_BOX_HEAD:
        metrics["grounding_acc50"] = None  # an untrained box head answers nothing meaningful
    metrics["object_map"] = evaluate_multilabel(model, processor, synthetic_multilabel(records)).metrics["mAP"]
    seg = synthetic_segmentation(records, SEG_LABELS)
    classifier = segmentation_classifier(model, processor, seg)
    metrics["seg_miou"] = evaluate_segmentation(model, processor, seg, classifier=classifier).metrics["mIoU"]
    pred = predict_masks(model, processor, [seg.items[scene].image], *classifier, len(seg.classnames))[0]
    return {k: metrics[k] for k in METRICS}, pred.numpy()


def write_outputs(target: Path, payload: dict, text: str) -> None:
    """``results.json`` (other keys it holds, e.g. ``"mllm"``, are kept) and ``learning_proof_table.md``."""
    target.mkdir(parents=True, exist_ok=True)
    path = target / "results.json"
    existing = json.loads(path.read_text()) if path.is_file() else {}
    existing.update(payload)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(existing, indent=2) + "\n")
    tmp.replace(path)
    (target / "learning_proof_table.md").write_text(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loclip.eval.learning_proof",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="runs/learning_proof", help="runs go to OUT/s<seed>/<variant>")
    parser.add_argument("--docs", default=None, help="also write results.json/.md and the plots here")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per variant and seed")
    parser.add_argument("--max-scenes", type=int, default=200, help="held-out scenes per split")
    parser.add_argument("extra", nargs="*", help="recipe overrides passed to loclip-pretrain, after --")
    args = parser.parse_args(argv)
    out = Path(args.out)
    synth = out / "synth"
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if not variants:
        parser.error("--variants names no variant")
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if any(seed < 0 for seed in args.seeds):
        parser.error(f"--seeds must be >= 0, got {args.seeds}")

    per_seed: dict[str, dict[int, Figures]] = {v: {} for v in variants}
    seconds: dict[str, dict[int, float]] = {v: {} for v in variants}
    maps: dict[str, np.ndarray] = {}
    evaluating = 0.0  # seconds spent evaluating in this call (training time comes from each run's record)
    from .synth_data import read_scenes

    records: list = []  # the val scenes, read once the first run has made the world
    for seed in args.seeds:
        for variant in variants:
            run = out / f"s{seed}" / variant
            seconds[variant][seed] = train_variant(variant, run, synth, seed, args.extra)
            start = time.perf_counter()
            records = records or read_scenes(synth, "val", args.max_scenes)
            scene = plot_scene(records)
            per_seed[variant][seed], pred = evaluate_variant(variant, run, synth, args.max_scenes, records, scene)
            evaluating += time.perf_counter() - start
            if seed == args.seeds[0]:
                maps[variant] = pred
            print(f"seed {seed} {variant}", per_seed[variant][seed], f"{seconds[variant][seed]:.0f} s", flush=True)
    ground = baseline_grounding(str(synth))
    per_seed["baseline"] = {s: {m: (ground if m == "grounding_acc50" else None) for m in METRICS} for s in args.seeds}
    stats = {v: summarize(figures) for v, figures in per_seed.items()}
    total = evaluating + sum(t for runs in seconds.values() for t in runs.values())

    steps = int(args.extra[args.extra.index("--optim.steps") + 1]) if "--optim.steps" in args.extra else PROOF_STEPS
    table = results_table(METRICS, stats)
    directions = claims_table([c for c in CLAIMS if c.better in stats and c.worse in stats], stats)
    train_s = ", ".join(f"{v} {sum(s.values()) / len(s):.0f}" for v, s in seconds.items())
    text = (
        f"{len(args.seeds)} seed(s) {args.seeds}, {steps} steps, mean ± sd over seeds:\n\n{table}\n\n"
        f"{directions}\n\nMean training wall time per run (s): {train_s}. Training and evaluation of "
        f"every run: {total / 60:.1f} min."
    )
    print(text)
    first = args.seeds[0]
    payload = {
        "encoder": {v: figures[first] for v, figures in per_seed.items()},
        "encoder_seeds": stats,
        "encoder_per_seed": {v: {str(s): f for s, f in figures.items()} for v, figures in per_seed.items()},
        "encoder_protocol": {
            "seeds": args.seeds,
            "steps": steps,
            "extra": args.extra,
            "seg_labels": SEG_LABELS,
            "minutes": round(total / 60, 1),
        },
    }
    from .proof_plots import plot_curves, plot_segmentation
    from .synth_data import synthetic_segmentation

    shown = records[scene]
    truth = synthetic_segmentation([shown], SEG_LABELS)
    for target in [out] + ([Path(args.docs)] if args.docs else []):
        write_outputs(target, payload, text)
        plot_curves({v: out / f"s{first}" / v for v in variants}, target / "img" / "learning_curves.png")
        plot_segmentation(
            np.asarray(shown.image),
            truth.items[0].mask,
            maps,
            truth.classnames,
            target / "img" / "segmentation_maps.png",
            f"zero-shot segmentation ({SEG_LABELS} classes), val scene {scene}, seed {first}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
