"""transformers APIs that changed name inside the supported range (transformers >= 5.20, see docs/compatibility.md).

Every call site goes through these, so the range is handled in one place and dropping an old version means
deleting a branch here.
"""

from __future__ import annotations

from torch import nn


def enable_activation_checkpointing(model: nn.Module) -> None:
    """``activation_checkpointing_enable()`` (5.23+); before 5.23 the same method was ``gradient_checkpointing_enable``
    (deprecated from 5.23 on)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    (enable or model.gradient_checkpointing_enable)()


def is_activation_checkpointing(model: nn.Module) -> bool:
    """Whether ``model`` checkpoints activations: ``is_activation_checkpointing`` (5.23+), else
    ``is_gradient_checkpointing``."""
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(model.is_gradient_checkpointing)
