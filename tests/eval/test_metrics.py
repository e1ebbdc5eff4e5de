"""Every metric against a hand-computed toy case."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from loclip.encoder.boxes import box_iou
from loclip.eval.metrics import (
    average_precision,
    confusion_matrix,
    iou_accuracy,
    mean_average_precision,
    mean_per_class_accuracy,
    per_class_iou,
    positive_rank,
    recall_at_k,
    segmentation_metrics,
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


# ------------------------------------------------------------------------------ average precision (multi-label)


def _reference_ap(scores: list[float], positives: list[bool]) -> float:
    """AP as the precision/recall step sum over thresholds (sklearn's definition), written as a plain loop:
    walk the distinct scores from the highest down; at each, precision and recall of "score >= threshold";
    AP = sum of (recall gained) x precision. Tied items enter together."""
    total = sum(positives)
    ap, recall_before = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        picked = [p for s, p in zip(scores, positives) if s >= threshold]
        recall, precision = sum(picked) / total, sum(picked) / len(picked)
        ap += (recall - recall_before) * precision
        recall_before = recall
    return ap


def test_average_precision_hand_computed() -> None:
    # ranked: + - + - + → precision at each positive 1/1, 2/3, 3/5
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    assert average_precision(scores, torch.tensor([1, 0, 1, 0, 1]).bool()) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # order of the input does not matter, only the scores
    perm = torch.tensor([4, 2, 0, 3, 1])
    assert average_precision(scores[perm], torch.tensor([1, 1, 1, 0, 0]).bool()) == pytest.approx(34 / 45)
    # the positives ranked last: 1/4 and 2/5
    assert average_precision(scores, torch.tensor([0, 0, 0, 1, 1]).bool()) == pytest.approx((1 / 4 + 2 / 5) / 2)


def test_average_precision_ties_count_against_the_positive() -> None:
    # all equal: every positive shares the whole list → the base rate
    assert average_precision(torch.ones(5), torch.tensor([0, 1, 0, 0, 1]).bool()) == pytest.approx(2 / 5)
    # a positive tied with a negative at 0.5: 3 items score >= 0.5, 1 positive → 1/3; the last at 0.1: 2/4
    scores, positives = torch.tensor([0.9, 0.5, 0.5, 0.1]), torch.tensor([0, 1, 0, 1]).bool()
    assert average_precision(scores, positives) == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_average_precision_against_a_step_sum_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    for trial in range(30):
        n = int(torch.randint(2, 40, (1,), generator=gen))
        positives = torch.rand(n, generator=gen) < 0.3
        positives[int(torch.randint(n, (1,), generator=gen))] = True  # at least one
        # half the trials draw few distinct integer scores, so ties are common
        scores = torch.randint(0, 4, (n,), generator=gen).float() if trial % 2 else torch.randn(n, generator=gen)
        expected = _reference_ap(scores.tolist(), positives.tolist())
        assert average_precision(scores, positives) == pytest.approx(expected, abs=1e-12), trial


def test_average_precision_without_positive_is_nan_and_map_skips_it() -> None:
    assert math.isnan(average_precision(torch.rand(4), torch.zeros(4, dtype=torch.bool)))
    # class 0: positives ranked 1st and 3rd → (1 + 2/3) / 2; class 1: its positive ranked 2nd → 1/2;
    # class 2: no positive, left out of the mean
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.7, 0.4], [0.7, 0.9, 0.3]])
    positives = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]]).bool()
    assert mean_average_precision(scores, positives) == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    assert math.isnan(mean_average_precision(scores, torch.zeros(3, 3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="must be"):
        mean_average_precision(scores, positives[:2])
    with pytest.raises(ValueError, match="must both be"):
        average_precision(scores, positives)


# ------------------------------------------------------------------------------ segmentation (confusion matrix)

# A 3-class 4x4 case; 255 is unlabelled. Row by row (t = truth, p = prediction):
#   t 0 0 1 1     p 0 1 1 1
#   t 0 0 1 1     p 0 0 1 2
#   t 2 2 1 1     p 2 0 1 1
#   t 2 2 2 255   p 2 2 2 0    (the 255 pixel is not counted, whatever its prediction)
# truth 0 (4 px): predicted 0 three times, 1 once                     → row [3, 1, 0]
# truth 1 (6 px): predicted 1 five times, 2 once (row 2, column 4)    → row [0, 5, 1]
# truth 2 (5 px): predicted 2 four times, 0 once (row 3, column 2)    → row [1, 0, 4]
# IoU = TP / (row + column - TP): class 0 3/(4+4-3) = 3/5, class 1 5/(6+6-5) = 5/7, class 2 4/(5+5-4) = 2/3
# pixel accuracy 12/15; mean accuracy (3/4 + 5/6 + 4/5) / 3
TARGET = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 2, 255]])
PRED = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 2], [2, 0, 1, 1], [2, 2, 2, 0]])


def test_confusion_matrix_and_miou_by_hand() -> None:
    confusion = confusion_matrix(PRED, TARGET, 3, ignore_index=255)
    assert confusion.tolist() == [[3, 1, 0], [0, 5, 1], [1, 0, 4]]
    assert confusion.dtype == torch.int64
    assert per_class_iou(confusion) == pytest.approx([3 / 5, 5 / 7, 2 / 3])
    assert segmentation_metrics(confusion) == pytest.approx(
        {"mIoU": (3 / 5 + 5 / 7 + 2 / 3) / 3, "pixel_acc": 12 / 15, "mean_acc": (3 / 4 + 5 / 6 + 4 / 5) / 3}
    )
    # summing per-image matrices is the dataset's matrix: two copies double every count, same metrics
    twice = confusion + confusion_matrix(PRED, TARGET, 3, ignore_index=255)
    assert segmentation_metrics(twice) == pytest.approx(segmentation_metrics(confusion))


def test_absent_classes_in_miou() -> None:
    # a 4th class nobody has or predicts: no IoU (NaN), left out of mIoU and mean_acc
    confusion = confusion_matrix(PRED, TARGET, 4, ignore_index=255)
    assert math.isnan(per_class_iou(confusion)[3])
    assert segmentation_metrics(confusion) == pytest.approx(segmentation_metrics(confusion[:3, :3]))
    # predicted where the truth has no such class: IoU 0 counts in mIoU (one class-1 pixel now says 3)
    pred = PRED.clone()
    pred[0, 2] = 3
    metrics = segmentation_metrics(confusion_matrix(pred, TARGET, 4, ignore_index=255))
    assert metrics["mIoU"] == pytest.approx((3 / 5 + 4 / 7 + 2 / 3 + 0) / 4)  # class 1: TP 4, union 6 + 5 - 4
    assert metrics["mean_acc"] == pytest.approx((3 / 4 + 4 / 6 + 4 / 5) / 3)  # class 3 has no truth
    assert all(math.isnan(v) for v in segmentation_metrics(torch.zeros(3, 3, dtype=torch.long)).values())


def test_confusion_matrix_rejects_values_outside_the_classes() -> None:
    with pytest.raises(ValueError, match="target label 255 is not one of the 3 classes"):
        confusion_matrix(PRED, TARGET, 3)  # no ignore index: 255 is an unknown class
    with pytest.raises(ValueError, match="target label 3 is not one of the 3 classes"):
        confusion_matrix(PRED, torch.where(TARGET == 255, 3, TARGET), 3, ignore_index=255)
    with pytest.raises(ValueError, match="target label -1"):
        confusion_matrix(PRED, torch.where(TARGET == 255, -1, TARGET), 3, ignore_index=255)
    with pytest.raises(ValueError, match="pred holds a label outside 0..2"):
        confusion_matrix(torch.where(PRED == 2, 5, PRED), TARGET, 3, ignore_index=255)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(PRED[:3], TARGET, 3, ignore_index=255)
