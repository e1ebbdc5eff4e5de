"""Batched inference agrees with the model's own calls; tasks run on tiny data and report what they did."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from loclip.eval import (
    CaptionedImage,
    Dataset,
    Region,
    RegionImage,
    evaluate_grounding,
    evaluate_region_classification,
    evaluate_region_retrieval,
    evaluate_retrieval,
    evaluate_synthetic,
    read_coco_instances,
)
from loclip.eval.embed import embed_captions, embed_regions, embed_texts, ground_phrases, text_context
from loclip.synth import write_split

LONG = (
    "A small red circle is on the left. A large blue square is in the bottom right. "
    "The blue square is right of the red circle. The background is grey."
)


def _scene_items() -> list[RegionImage]:
    a, b = Image.new("RGB", (80, 40), (200, 30, 30)), Image.new("RGB", (30, 90), (30, 30, 200))
    return [
        RegionImage(
            a, (Region((0, 0, 40, 40), 0, ("small red circle",)), Region((40, 0, 80, 20), 1, ("large blue square",)))
        ),
        RegionImage(b, (Region((5, 30, 25, 80), 1, ("large blue square", "small red circle")),)),
    ]


def test_long_captions(model_and_processor) -> None:
    model, processor = model_and_processor
    assert text_context(model, processor) == model.config.text_config.max_position_embeddings == 24
    short = "a small red circle"
    emb, overlong = embed_captions(model, processor, [short, LONG])
    assert overlong == 1
    sentences = [
        "A small red circle is on the left.",
        "A large blue square is in the bottom right.",
        "The blue square is right of the red circle.",
        "The background is grey.",
    ]
    expected = F.normalize(embed_texts(model, processor, sentences).mean(0), dim=-1)
    torch.testing.assert_close(emb[1], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(emb[0], embed_texts(model, processor, [short])[0], atol=1e-5, rtol=0)
    truncated, _ = embed_captions(model, processor, [short, LONG], mode="truncate")
    torch.testing.assert_close(truncated, embed_texts(model, processor, [short, LONG]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="long_captions must be one of"):
        embed_captions(model, processor, [short], mode="average")


@pytest.mark.parametrize("method", ["prompter", "roialign"])
def test_region_embeddings_match_the_model(model_and_processor, method: str) -> None:
    model, processor = model_and_processor
    items = _scene_items()
    got = embed_regions(model, processor, items, method, batch_size=1)  # batches of one: order across batches
    inputs = processor(images=[i.image for i in items], boxes=[[r.box for r in i.regions] for i in items])
    with torch.no_grad():
        ref = model.get_region_features(inputs["pixel_values"], inputs["boxes"], inputs["box_mask"], method=method)
    torch.testing.assert_close(got, F.normalize(ref[inputs["box_mask"]], dim=-1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="region_method must be one of"):
        embed_regions(model, processor, items, "pooled")


def test_grounding_in_pixels_matches_ground_and_post_process(model_and_processor) -> None:
    model, processor = model_and_processor
    items = _scene_items()
    pred, target = ground_phrases(model, processor, items, batch_size=2)
    assert pred.shape == target.shape == (4, 4)
    assert target[2].tolist() == [5, 30, 25, 80] and target[3].tolist() == [5, 30, 25, 80]
    # the same query through the model's one-phrase API and the processor's post-processing
    inputs = processor(images=[items[1].image], text=["small red circle"])
    with torch.no_grad():
        box = model.ground(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    (expected,) = processor.post_process_boxes(box[:, None], inputs["original_sizes"])
    torch.testing.assert_close(pred[3], expected[0], atol=1e-3, rtol=0)
    assert (pred[:, 2] <= torch.tensor([80, 80, 30, 30])).all()  # inside each original image
    result = evaluate_grounding(model, processor, Dataset("toy", items))
    assert result.info["num_queries"] == 4 and 0 <= result.metrics["acc@0.5"] <= 1


def test_tasks_report_counts(model_and_processor, coco: dict[str, Path]) -> None:
    model, processor = model_and_processor
    data = read_coco_instances(coco["instances"], coco["images"])
    result = evaluate_region_classification(model, processor, data, "roialign", ("a photo of a {}.",))
    assert result.info["num_regions"] == 3 and result.info["skipped"]["crowd_box"] == 1
    assert set(result.metrics) == {"top1", "mean_per_class"}
    result = evaluate_region_retrieval(model, processor, Dataset("toy", _scene_items()))
    assert result.info["num_regions"] == 3 and result.info["num_phrases"] == 4
    assert set(result.metrics) == {f"{d}_R@{k}" for d in ("r2t", "t2r") for k in (1, 5, 10)}
    # three regions, recall at 5 and 10 covers every candidate
    assert result.metrics["r2t_R@5"] == result.metrics["t2r_R@10"] == 1.0
    captions = Dataset("toy", [CaptionedImage(i.image, ("a red circle", LONG)) for i in _scene_items()])
    result = evaluate_retrieval(model, processor, captions, match_identical=False)
    assert result.info["num_captions"] == 4 and result.info["num_overlong_captions"] == 2
    with pytest.raises(ValueError, match="dataset 'empty' has no captioned images"):
        evaluate_retrieval(model, processor, Dataset("empty", []))
    bad = Dataset("bad", [RegionImage(Image.new("RGB", (8, 8)), (Region((0, 0, 4, 4), 5),))], ("a", "b"))
    with pytest.raises(ValueError, match="dataset 'bad': label 5 is outside the 2 class names"):
        evaluate_region_classification(model, processor, bad)


def test_evaluate_synthetic_keeps_its_keys(model_and_processor, synth_dir: Path, tmp_path: Path) -> None:
    model, processor = model_and_processor
    write_split(tmp_path, "val", 6, seed=0)
    write_split(tmp_path, "novel", 4, seed=1)
    metrics = evaluate_synthetic(model, processor, str(tmp_path), max_scenes=6)
    assert set(metrics) == {"region_acc", "grounding_acc50", "retrieval_r1", "long_retrieval_r1", "region_acc_novel"}
    assert all(0 <= v <= 1 for v in metrics.values())
