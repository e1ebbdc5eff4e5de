"""Held-out evaluation of an encoder on the synthetic world: the pretraining run's yardstick.

``evaluate_split`` reports four figures (the keys ``loclip-pretrain`` logs):
- ``region_acc``: top-1 region classification of every object box among all the world's phrases
  (bare phrases, no template);
- ``grounding_acc50``: box-head accuracy at IoU >= 0.5 for phrases naming one object alone;
- ``retrieval_r1`` / ``long_retrieval_r1``: image ↔ caption R@1, both directions averaged, for the short
  and the long captions (long ones sub-caption averaged when over the text context); identical captions
  all count as positives.
"""

from __future__ import annotations

from loclip.encoder import LoclipModel
from loclip.encoder.processing import LoclipProcessor

from .embed import embed_images
from .grounding import evaluate_grounding
from .prompts import BARE
from .region_cls import evaluate_region_classification
from .report import TaskResult
from .retrieval import evaluate_retrieval
from .synth_data import read_scenes, synthetic_captions, synthetic_regions


def synthetic_results(
    model: LoclipModel,
    processor: LoclipProcessor,
    synth_dir: str,
    split: str,
    max_scenes: int | None = 200,
    batch_size: int = 64,
    region_method: str = "prompter",
    progress: bool = False,
) -> list[TaskResult]:
    """The full results on one split: region classification, grounding, short and long retrieval."""
    model.eval()
    records = read_scenes(synth_dir, split, max_scenes)
    short, long = synthetic_captions(records), synthetic_captions(records, long=True)
    images = embed_images(model, processor, [item.image for item in short.items], batch_size, progress)
    return [
        evaluate_region_classification(
            model, processor, synthetic_regions(records), region_method, BARE, batch_size, progress
        ),
        evaluate_grounding(model, processor, synthetic_regions(records, unique_only=True), batch_size, progress),
        evaluate_retrieval(model, processor, short, batch_size=batch_size, progress=progress, image_emb=images),
        evaluate_retrieval(model, processor, long, batch_size=batch_size, progress=progress, image_emb=images),
    ]


def summarize(results: list[TaskResult]) -> dict[str, float]:
    """``synthetic_results`` → the four headline figures (module docstring)."""
    region, ground, short, long = results
    return {
        "region_acc": region.metrics["top1"],
        "grounding_acc50": ground.metrics["acc@0.5"],
        "retrieval_r1": _both_r1(short),
        "long_retrieval_r1": _both_r1(long),
    }


def _both_r1(result: TaskResult) -> float:
    return (result.metrics["i2t_R@1"] + result.metrics["t2i_R@1"]) / 2


def evaluate_split(
    model: LoclipModel,
    processor: LoclipProcessor,
    synth_dir: str,
    split: str,
    max_scenes: int = 200,
    batch_size: int = 64,
    region_method: str = "prompter",
) -> dict[str, float]:
    """Metrics on one split: region_acc, grounding_acc50, retrieval_r1, long_retrieval_r1."""
    return summarize(synthetic_results(model, processor, synth_dir, split, max_scenes, batch_size, region_method))


def evaluate_synthetic(
    model: LoclipModel,
    processor: LoclipProcessor,
    synth_dir: str,
    max_scenes: int = 200,
    region_method: str = "prompter",
    batch_size: int = 64,
) -> dict[str, float]:
    """val metrics plus region accuracy on the composition split (``region_acc_novel``)."""
    metrics = evaluate_split(model, processor, synth_dir, "val", max_scenes, batch_size, region_method)
    novel = read_scenes(synth_dir, "novel", max_scenes)
    result = evaluate_region_classification(model, processor, synthetic_regions(novel), region_method, BARE, batch_size)
    metrics["region_acc_novel"] = result.metrics["top1"]
    return metrics
