"""AdamW parameter groups and the cosine-with-warmup schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters that must not decay besides norms and biases: the temperature and SigLIP bias.
_NO_DECAY_NAMES = ("logit_scale", "logit_bias")


def param_groups(
    model: nn.Module, weight_decay: float, lr: float | None = None, lr_scales: dict[str, float] | None = None
) -> list[dict]:
    """Decay only matrices (ndim >= 2); norms, biases, embeddings-as-vectors and the temperature don't.

    ``lr_scales``: ``{name fragment: factor}``; a parameter whose name contains a fragment (the first that
    matches) trains at ``lr * factor`` in groups of its own (``lr`` required then).
    """
    lr_scales = lr_scales or {}
    if lr_scales and lr is None:
        raise ValueError("param_groups: lr_scales need the base lr")
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = not (p.ndim < 2 or name.split(".")[-1] in _NO_DECAY_NAMES)
        scale = next((f for fragment, f in lr_scales.items() if fragment in name), 1.0)
        groups.setdefault((decays, scale), []).append(p)
    out = [
        {"params": groups.pop((True, 1.0), []), "weight_decay": weight_decay},
        {"params": groups.pop((False, 1.0), []), "weight_decay": 0.0},
    ]
    for (decays, scale), params in sorted(groups.items(), key=lambda kv: kv[0]):
        out.append({"params": params, "weight_decay": weight_decay if decays else 0.0, "lr": lr * scale})
    return out


def cosine_with_warmup(warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """LR multiplier: linear warmup from ~0 to 1, then cosine down to ``min_ratio`` at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    lr_scales: dict[str, float] | None = None,
) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, weight_decay, lr, lr_scales), lr=lr, betas=betas, eps=eps)
