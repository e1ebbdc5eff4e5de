"""Metrics, each small enough to check against a hand-computed case.

Ties count against the query: a negative scoring exactly as high as the best positive ranks ahead of it.
A degenerate model (all scores equal) then scores 0 rather than a lucky 1, and a caption duplicated on
another image (identical text, identical embedding) is a miss unless duplicates are declared positives.
"""

from __future__ import annotations

import torch

from loclip.encoder.boxes import box_iou


def positive_rank(similarity: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's best positive: the number of negatives scoring at least as high.

    similarity: ``[Q, C]``; positives: bool ``[Q, C]`` with at least one True per row → long ``[Q]``.
    """
    if similarity.shape != positives.shape or similarity.dim() != 2:
        raise ValueError(f"similarity {tuple(similarity.shape)} and positives {tuple(positives.shape)} "
                         "must be the same [Q, C] shape")
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
