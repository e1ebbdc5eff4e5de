"""The encoder's choice lists: each is a ``Literal`` type (for recipes and signatures) and its tuple of values
(for checks and ``--help``). Recipes, configs and trainers import them from here and spell none of them out."""

from __future__ import annotations

from typing import Literal, get_args

GroundingHead = Literal["dense", "pooled"]  # the dense cell head (default) or CLOC's pooled MLP
RegionMethod = Literal["prompter", "roialign"]  # CLOC's prompter or the RoIAlign baseline
BoxLoss = Literal["l2", "l1_giou"]  # CLOC's squared L2, or DETR's L1 + GIoU

GROUNDING_HEADS: tuple[str, ...] = get_args(GroundingHead)
REGION_METHODS: tuple[str, ...] = get_args(RegionMethod)
BOX_LOSSES: tuple[str, ...] = get_args(BoxLoss)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """``ValueError`` naming ``name``, the value and the choices unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
