"""Metrics, each small enough to check against a hand-computed case."""

from __future__ import annotations

import torch

from loclip.encoder.boxes import box_iou


def recall_at_k(similarity: torch.Tensor, positives: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with a positive among their top-k candidates.

    similarity: ``[Q, C]``; positives: bool ``[Q, C]`` (several positives allowed, e.g. identical captions).
    """
    if similarity.shape != positives.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and positives {tuple(positives.shape)} differ")
    order = similarity.argsort(dim=1, descending=True)
    hits = positives.gather(1, order)  # [Q, C] in rank order
    first = torch.where(hits.any(1), hits.float().argmax(1), torch.full_like(hits[:, 0], hits.shape[1], dtype=torch.long))
    return {k: (first < k).float().mean().item() for k in ks}


def top1_accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """scores ``[N, C]``, targets ``[N]`` → share with argmax == target."""
    if scores.shape[0] == 0:
        return float("nan")
    return (scores.argmax(1) == targets).float().mean().item()


def mean_per_class_accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Accuracy averaged over the classes that occur in ``targets``."""
    correct = scores.argmax(1) == targets
    classes = targets.unique()
    return torch.stack([correct[targets == c].float().mean() for c in classes]).mean().item()


def iou_accuracy(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> float:
    """Share of predicted boxes ``[N, 4]`` whose IoU with the target ``[N, 4]`` is >= threshold."""
    if pred.shape[0] == 0:
        return float("nan")
    return (box_iou(pred, target) >= threshold).float().mean().item()
