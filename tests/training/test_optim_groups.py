"""AdamW parameter groups: decay only matrices, and per-name LR factors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from loclip.training.optim import build_optimizer, cosine_with_warmup, param_groups


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)


def _lookup(groups: list[dict]) -> dict[int, tuple[float, float | None]]:
    """id(param) → (weight_decay, lr or None) of its group."""
    return {id(p): (g["weight_decay"], g.get("lr")) for g in groups for p in g["params"]}


def test_decay_and_lr_scales_per_parameter() -> None:
    toy = Toy()
    groups = param_groups(toy, 0.1, lr=1e-3, lr_scales={"trunk.": 0.1})
    seen = _lookup(groups)
    assert seen[id(toy.head.weight)] == (0.1, None) and seen[id(toy.head.bias)] == (0.0, None)
    assert seen[id(toy.trunk.weight)] == (0.1, pytest.approx(1e-4))
    assert seen[id(toy.trunk.bias)] == (0.0, pytest.approx(1e-4))
    assert id(toy.frozen.weight) not in seen
    assert sum(len(g["params"]) for g in groups) == 4


def test_scaled_groups_follow_the_schedule_at_their_own_lr() -> None:
    toy = Toy()
    optimizer = build_optimizer(toy, 1e-3, 0.0, (0.9, 0.999), 1e-8, lr_scales={"trunk.": 0.5})
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(0, 10))
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lrs[id(toy.trunk.weight)] == pytest.approx(0.5 * lrs[id(toy.head.weight)])
    assert lrs[id(toy.head.weight)] == pytest.approx(1e-3 * cosine_with_warmup(0, 10)(5))


def test_lr_scales_need_the_base_lr() -> None:
    with pytest.raises(ValueError, match="base lr"):
        param_groups(Toy(), 0.1, lr_scales={"trunk.": 0.1})
