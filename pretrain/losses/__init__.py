"""Pretraining losses as pure functions (no trainer state).

Each loss returns ``dict[str, torch.Tensor]`` of named scalar terms, meant to be summed into the training
loss and logged one by one. Inputs are raw embeddings (normalised inside) unless stated. Under a process
group every rank must call each loss every step; the value a rank returns is scaled so that **its mean over
ranks is the global-batch loss**, which makes DDP/DeepSpeed's gradient averaging exact (see
``contrastive.py``). With no process group everything runs in one process.
"""

from loclip.encoder.collectives import gather_no_grad, gather_with_grad, rank_and_world

from .cloc import dense_grounding_loss, grounding_loss, region_text_loss, region_weight
from .contrastive import (
    MAX_LOGIT_SCALE,
    clip_loss,
    get_ground_truth,
    get_logits,
    inverse_temperature,
    paired_infonce,
    siglip_loss,
)
from .dreamlip import grouping_loss, grouping_weights, multi_positive_loss

__all__ = [
    "MAX_LOGIT_SCALE",
    "clip_loss",
    "dense_grounding_loss",
    "gather_no_grad",
    "gather_with_grad",
    "get_ground_truth",
    "get_logits",
    "grounding_loss",
    "grouping_loss",
    "grouping_weights",
    "inverse_temperature",
    "multi_positive_loss",
    "paired_infonce",
    "rank_and_world",
    "region_text_loss",
    "region_weight",
    "siglip_loss",
]
