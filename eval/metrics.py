"""Metrics, each small enough to check against a hand-computed case.

Ties count against the query: a negative scoring exactly as high as the best positive ranks ahead of it.
A degenerate model (all scores equal) then scores 0 rather than a lucky 1, and a caption duplicated on
another image (identical text, identical embedding) is a miss unless duplicates are declared positives.
"""

from __future__ import annotations

import math

import torch

from loclip.encoder.boxes import box_iou


def positive_rank(similarity: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's best positive: the number of negatives scoring at least as high.

    similarity: ``[Q, C]``; positives: bool ``[Q, C]`` with at least one True per row → long ``[Q]``.
    """
    if similarity.shape != positives.shape or similarity.dim() != 2:
        raise ValueError(
            f"similarity {tuple(similarity.shape)} and positives {tuple(positives.shape)} must be the same [Q, C] shape"
        )
    positives = positives.to(device=similarity.device, dtype=torch.bool)
    has_positive = positives.any(1)
    if not has_positive.all():
        raise ValueError(f"query {int((~has_positive).nonzero()[0])} has no positive candidate")
    best = similarity.masked_fill(~positives, float("-inf")).max(1).values
    return ((similarity >= best[:, None]) & ~positives).sum(1)


def recall_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of ranks ``[Q]`` below each k (R@k); NaN for no queries."""
    if ranks.numel() == 0:
        return {k: float("nan") for k in ks}
    return {k: (ranks < k).float().mean().item() for k in ks}


def recall_at_k(
    similarity: torch.Tensor, positives: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[int, float]:
    """Share of queries with a positive among their top-k candidates.

    similarity: ``[Q, C]``; positives: bool ``[Q, C]`` (several positives allowed, e.g. an image's five captions).
    """
    return recall_from_ranks(positive_rank(similarity, positives), ks)


def target_rank(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """scores ``[N, C]``, targets long ``[N]`` → ``[N]``: the number of other classes scoring >= the target."""
    positives = torch.zeros_like(scores, dtype=torch.bool)
    positives[torch.arange(len(targets)), targets] = True
    return positive_rank(scores, positives)


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, k: int = 1) -> float:
    """Share of samples whose target is among the k best of ``scores`` ``[N, C]`` (NaN for N = 0)."""
    if scores.shape[0] == 0:
        return float("nan")
    return (target_rank(scores, targets) < k).float().mean().item()


def top1_accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """scores ``[N, C]``, targets ``[N]`` → share whose target is the (strictly) best class."""
    return topk_accuracy(scores, targets, 1)


def mean_per_class_accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy averaged over the classes that occur in ``targets`` (each class weighs the same)."""
    if scores.shape[0] == 0:
        return float("nan")
    correct = target_rank(scores, targets) == 0
    return torch.stack([correct[targets == c].float().mean() for c in targets.unique()]).mean().item()


def iou_accuracy(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of predicted boxes ``[N, 4]`` whose IoU with the target ``[N, 4]`` (same frame) is >= threshold."""
    if pred.shape[0] == 0:
        return float("nan")
    return (box_iou(pred, target) >= threshold).float().mean().item()


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Non-interpolated AP of one class: the mean, over its positives, of the precision among every item
    scoring at least as high as that positive (ties count against it, so equal scores give the base rate).

    scores: ``[N]``; positives: bool ``[N]``. NaN when there is no positive.
    """
    if scores.shape != positives.shape or scores.dim() != 1:
        raise ValueError(f"scores {tuple(scores.shape)} and positives {tuple(positives.shape)} must both be [N]")
    positives = positives.to(device=scores.device, dtype=torch.bool)
    if not positives.any():
        return float("nan")
    at_least = scores[None, :] >= scores[positives][:, None]  # [P, N]: items scoring >= each positive
    hits = (at_least & positives[None, :]).sum(1).double()
    return (hits / at_least.sum(1).double()).mean().item()


def mean_average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Multi-label mAP: ``average_precision`` of each class (column) over the images (rows), averaged over the
    classes that have at least one positive. scores ``[N, C]``; positives bool ``[N, C]``."""
    if scores.shape != positives.shape or scores.dim() != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and positives {tuple(positives.shape)} must be [N, C]")
    aps = [average_precision(scores[:, c], positives[:, c]) for c in range(scores.shape[1]) if positives[:, c].any()]
    return sum(aps) / len(aps) if aps else float("nan")


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Pixel counts ``[C, C]`` (int64): row = true class, column = predicted class.

    pred, target: integer tensors of one shape (e.g. ``[H, W]``). Pixels whose target is ``ignore_index``
    are left out; any other target outside ``0..C-1`` is an error (a mask that does not match the classes).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    bad = (target < 0) | (target >= num_classes)
    if bad.any():
        raise ValueError(
            f"target label {int(target[bad][0])} is not one of the {num_classes} classes "
            f"(0..{num_classes - 1}) nor the ignore index {ignore_index}"
        )
    if ((pred < 0) | (pred >= num_classes)).any():
        raise ValueError(f"pred holds a label outside 0..{num_classes - 1}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def segmentation_metrics(confusion: torch.Tensor) -> dict[str, float]:
    """From a confusion matrix ``[C, C]`` (rows true, columns predicted), summed over a whole dataset:

    - ``mIoU``: mean over classes of TP / (TP + FP + FN), over the classes that occur in the truth or the
      prediction (a class never seen and never predicted has no IoU; one predicted but absent scores 0);
    - ``pixel_acc``: correct pixels / all counted pixels;
    - ``mean_acc``: per-class recall averaged over the classes present in the truth.
    NaN when nothing was counted.
    """
    confusion = confusion.double()
    if confusion.sum() == 0:
        return {"mIoU": float("nan"), "pixel_acc": float("nan"), "mean_acc": float("nan")}
    ious = [v for v in per_class_iou(confusion) if not math.isnan(v)]
    tp, truth = confusion.diagonal(), confusion.sum(1)
    return {
        "mIoU": sum(ious) / len(ious),
        "pixel_acc": (tp.sum() / confusion.sum()).item(),
        "mean_acc": (tp[truth > 0] / truth[truth > 0]).mean().item(),
    }


def per_class_iou(confusion: torch.Tensor) -> list[float]:
    """IoU of every class of a confusion matrix ``[C, C]`` (NaN where the class has no union)."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(1) + confusion.sum(0) - tp
    return [(t / u).item() if u > 0 else float("nan") for t, u in zip(tp, union)]
