"""The learning-proof benchmark: four encoders, same data, steps and seed, scored on held-out scenes.

    python -m loclip.eval.learning_proof --out runs/learning_proof --docs docs

Variants (``loclip.pretrain.config.apply_variant``):
``clip`` (CLIP loss only; regions by RoIAlign), ``dreamlip`` (+ DreamLIP sub-caption losses),
``cloc`` (+ CLOC region and grounding losses with the Prompter: the full loclip recipe) and
``cloc_roialign`` (the region loss on RoIAlign features instead of the Prompter). Each is trained by
``loclip-pretrain`` (the quickstart recipe) in its own process, then evaluated on the synthetic
world's val split and its composition split. ``baseline`` always answers the most common box.
Writes ``results.json`` (``{"encoder": {variant: {metric: value}}}``), ``results.md`` and a PNG of
the training curves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from loclip.encoder.boxes import box_iou

METRICS = ("region_acc", "region_acc_novel", "grounding_acc50", "long_retrieval_r1", "retrieval_r1")
VARIANTS = ("clip", "dreamlip", "cloc", "cloc_roialign")
HAS_BOX_HEAD = {"cloc"}
REGION_METHOD = {"clip": "roialign", "dreamlip": "roialign", "cloc": "prompter", "cloc_roialign": "roialign"}


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


def train_variant(variant: str, out: Path, synth: Path, extra: list[str]) -> float:
    """Run ``loclip-pretrain --variant`` in its own process; returns wall seconds."""
    cmd = [sys.executable, "-m", "loclip.cli.pretrain", "--variant", variant, "--output-dir", str(out / variant),
           "--synth-dir", str(synth), "--run.progress", "false", "--run.resume", "false", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    return time.perf_counter() - start


def evaluate_variant(variant: str, out: Path, synth: Path, max_scenes: int) -> dict[str, float | None]:
    from transformers import AutoModel, AutoProcessor

    import loclip.encoder  # noqa: F401  (registers the Auto classes)
    from loclip.eval.synthetic import evaluate_synthetic

    model = AutoModel.from_pretrained(out / variant).eval()
    processor = AutoProcessor.from_pretrained(out / variant)
    metrics: dict[str, float | None] = dict(evaluate_synthetic(model, processor, str(synth), max_scenes,
                                                               REGION_METHOD[variant]))
    if variant not in HAS_BOX_HEAD:
        metrics["grounding_acc50"] = None  # an untrained box head answers nothing meaningful
    return {k: metrics[k] for k in METRICS}


def plot_curves(out: Path, variants: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from loclip.training.metrics_log import read_metrics

    terms = ("train/clip", "train/multi_positive", "train/region_text", "train/ground_cell", "train/ground_l2")
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.2))
    for i, variant in enumerate(variants):
        rows = [r for r in read_metrics(out / variant / "metrics.jsonl") if "train/loss" in r]
        for ax, term in zip(axes, terms):
            pts = [(r["step"], r[term]) for r in rows if term in r]
            if pts:  # one colour per variant across panels (not every variant has every term)
                ax.plot(*zip(*pts), label=variant, color=f"C{i}")
    for ax, term in zip(axes, terms):
        ax.set_title(term.split("/")[1])
        ax.set_xlabel("step")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(variants))
    fig.subplots_adjust(top=0.8)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def markdown(results: dict[str, dict[str, float | None]]) -> str:
    lines = ["| variant | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for variant, metrics in results.items():
        cells = ["—" if metrics.get(m) is None else f"{metrics[m]:.3f}" for m in METRICS]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loclip.eval.learning_proof", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/learning_proof", help="runs go to OUT/<variant>")
    parser.add_argument("--docs", default=None, help="also write results.json/.md and the plot here")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--max-scenes", type=int, default=200, help="held-out scenes per split")
    parser.add_argument("extra", nargs="*", help="recipe overrides passed to loclip-pretrain, after --")
    args = parser.parse_args(argv)
    out = Path(args.out)
    synth = out / "synth"
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")

    results: dict[str, dict[str, float | None]] = {}
    seconds: dict[str, float] = {}
    for variant in variants:
        seconds[variant] = train_variant(variant, out, synth, args.extra)
        results[variant] = evaluate_variant(variant, out, synth, args.max_scenes)
        print(variant, results[variant], f"{seconds[variant]:.0f} s", flush=True)
    results["baseline"] = {m: None for m in METRICS}
    results["baseline"]["grounding_acc50"] = baseline_grounding(str(synth))

    table = markdown(results)
    print(table)
    payload = {"encoder": results}
    table += "\n\nTraining wall time (s): " + ", ".join(f"{v} {s:.0f}" for v, s in seconds.items())
    targets = [out] + ([Path(args.docs)] if args.docs else [])
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        plot_curves(out, variants, target / "img" / "learning_curves.png")
        path = target / "results.json"
        existing = json.loads(path.read_text()) if path.is_file() else {}
        existing.update(payload)  # keep other keys (e.g. "mllm")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(existing, indent=2) + "\n")
        tmp.replace(path)
        (target / "learning_proof_table.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
