"""Every metric against a hand-computed toy case."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from loclip.encoder.boxes import box_iou
from loclip.eval.metrics import (
    iou_accuracy,
    mean_per_class_accuracy,
    positive_rank,
    recall_at_k,
    top1_accuracy,
    topk_accuracy,
)
from loclip.eval.retrieval import caption_incidence, retrieval_metrics
from loclip.eval.zeroshot import classification_metrics


def test_three_images_r1_known() -> None:
    # image i's caption is caption i; image 2 prefers caption 0, so i2t R@1 = 2/3
    sim = torch.tensor([[0.9, 0.1, 0.2], [0.0, 0.8, 0.3], [0.7, 0.2, 0.5]])
    eye = torch.eye(3, dtype=torch.bool)
    assert recall_at_k(sim, eye, (1, 2)) == pytest.approx({1: 2 / 3, 2: 1.0})
    # caption queries: caption 0 → image 0 (0.9 > 0.7), caption 1 → image 1, caption 2 → image 2 (0.5 > 0.3, 0.2)
    assert recall_at_k(sim.t(), eye, (1,))[1] == pytest.approx(1.0)


def test_r5_differs_from_r1() -> None:
    # one query, 8 candidates; the positive is ranked 4th (three negatives above it)
    sim = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
    pos = torch.zeros(2, 8, dtype=torch.bool)
    pos[0, 3] = True  # rank 3 (0-based)
    pos[1, 7] = True  # rank 0
    assert positive_rank(sim, pos).tolist() == [3, 0]
    assert recall_at_k(sim, pos, (1, 4, 5)) == pytest.approx({1: 0.5, 4: 1.0, 5: 1.0})
    pos[0, 3], pos[0, 7] = False, True  # now last of 8
    assert recall_at_k(sim, pos, (1, 5, 8)) == pytest.approx({1: 0.5, 5: 0.5, 8: 1.0})


def test_ties_count_against_the_query() -> None:
    sim = torch.ones(3, 3)
    assert recall_at_k(sim, torch.eye(3, dtype=torch.bool), (1, 3)) == pytest.approx({1: 0.0, 3: 1.0})
    assert top1_accuracy(torch.zeros(4, 5), torch.tensor([0, 1, 2, 3])) == 0.0


def test_query_without_positive_is_an_error() -> None:
    with pytest.raises(ValueError, match="query 1 has no positive"):
        recall_at_k(torch.rand(2, 3), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="same"):
        recall_at_k(torch.rand(2, 3), torch.ones(3, 2, dtype=torch.bool))


def test_several_captions_per_image_and_duplicates() -> None:
    # image 0 has captions 0,1; image 1 has captions 2,3 where caption 3 repeats caption 0's text
    captions = [("a red circle", "a big red circle"), ("a blue square", "A  red circle")]
    owns, key = caption_incidence(captions)
    assert key.tolist() == [0, 1, 2, 0]
    assert owns.tolist() == [[True, True, False], [True, False, True]]
    strict_owns, strict_key = caption_incidence(captions, match_identical=False)
    assert strict_key.tolist() == [0, 1, 2, 3] and strict_owns.sum().item() == 4

    e = torch.eye(4)
    images = F.normalize(torch.stack([e[0] + 0.1 * e[1], e[2]]), dim=-1)
    # duplicate captions get identical embeddings (same text); image 1's own caption 2 is far from it
    texts = F.normalize(torch.stack([e[0], e[1], e[3] + 0.2 * e[2], e[0]]), dim=-1)
    strict = retrieval_metrics(images, texts, strict_owns, strict_key, ks=(1,))
    matched = retrieval_metrics(images, texts, owns, key, ks=(1,))
    # image → text: image 0's best caption is the text "a red circle" (captions 0 and 3, tied); strict: caption 3
    # belongs to image 1 and ties with caption 0 → a miss; matched: both are image 0's → a hit
    assert strict["i2t_R@1"] == pytest.approx(0.5) and matched["i2t_R@1"] == pytest.approx(1.0)
    # text → image: caption 3 ("a red circle" of image 1) scores image 0 highest → strict miss, matched hit
    assert strict["t2i_R@1"] == pytest.approx(3 / 4)
    assert matched["t2i_R@1"] == pytest.approx(1.0)


def test_iou_one_seventh() -> None:
    a, b = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])  # overlap 1, union 7
    assert box_iou(a, b).item() == pytest.approx(1 / 7)
    assert iou_accuracy(a, b, 0.5) == 0.0
    assert iou_accuracy(a, b, 1 / 7) == 1.0 and iou_accuracy(a, b, 0.15) == 0.0
    assert iou_accuracy(torch.cat([a, b]), torch.cat([b, b]), 0.5) == 0.5
    assert math.isnan(iou_accuracy(torch.zeros(0, 4), torch.zeros(0, 4)))


def test_mean_per_class_vs_top1_unbalanced() -> None:
    # four samples of class 0, one of class 1; a classifier that always says class 0
    scores = torch.tensor([[1.0, 0.0]] * 5)
    targets = torch.tensor([0, 0, 0, 0, 1])
    assert top1_accuracy(scores, targets) == pytest.approx(0.8)
    assert mean_per_class_accuracy(scores, targets) == pytest.approx(0.5)  # (4/4 + 0/1) / 2


def test_topk_and_classification_metrics() -> None:
    scores = torch.tensor([[0.1, 0.5, 0.4, 0.3, 0.2, 0.0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    targets = torch.tensor([2, 5])  # ranks 1 and 5
    assert topk_accuracy(scores, targets, 1) == 0.0
    assert topk_accuracy(scores, targets, 2) == 0.5
    assert topk_accuracy(scores, targets, 6) == 1.0
    m = classification_metrics(scores, targets)
    assert m == pytest.approx({"top1": 0.0, "top5": 0.5, "mean_per_class": 0.0})
    # fewer classes than k: top5 is capped at all classes, so it is 1
    assert classification_metrics(scores[:, :2], torch.tensor([0, 1]))["top5"] == 1.0
