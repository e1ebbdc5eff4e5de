"""The models the bench scripts compare: loclip's encoder and a transformers ``CLIPModel`` with the same
towers and weights, at named sizes, plus one training step of each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import CLIPConfig, CLIPModel

from loclip.encoder import LoclipModel, tiny_config
from loclip.pretrain.config import LossRecipe
from loclip.pretrain.objective import PretrainObjective


@dataclass(frozen=True)
class Size:
    """An encoder shape (both towers) and the batch it is timed with."""

    name: str
    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    projection_dim: int
    batch: int

    def describe(self) -> str:
        return (
            f"{self.image_size} px, patch {self.patch_size}, width {self.width}, {self.layers}+{self.layers} "
            f"layers, batch {self.batch}"
        )


SIZES = {
    # The quickstart's encoder and batch.
    "tiny": Size("tiny", 64, 8, 64, 2, 4, 32, 64),
    # Larger, so that fixed per-call overheads weigh less: 256 patches, 4 layers of width 256.
    "small": Size("small", 128, 8, 256, 4, 4, 128, 16),
    # The ViT-B/16 vision trunk at 224 px (196 patches, 12 layers of width 768; the text tower alike), batch 2:
    # a CPU training step takes seconds.
    "vit_b16": Size("vit_b16", 224, 16, 768, 12, 12, 512, 2),
}


def size_dict(size: Size) -> dict[str, Any]:
    return asdict(size)


def build_pair(size: Size, tokenizer: Any, max_text_length: int, seed: int = 0) -> tuple[LoclipModel, CLIPModel]:
    """A ``LoclipModel`` and a transformers ``CLIPModel`` built from the same CLIP vision/text configs, with the
    loclip towers' weights copied into the CLIP model (so both compute the same image/text embeddings)."""
    config = tiny_config(
        vocab_size=len(tokenizer),
        image_size=size.image_size,
        patch_size=size.patch_size,
        width=size.width,
        layers=size.layers,
        heads=size.heads,
        projection_dim=size.projection_dim,
        max_text_length=max_text_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    loclip = LoclipModel(config)
    clip_config = CLIPConfig(
        text_config=config.text_config.to_dict(),
        vision_config=config.vision_config.trunk_config.to_dict(),
        projection_dim=config.projection_dim,
    )
    clip = CLIPModel(clip_config)
    clip.vision_model.load_state_dict(loclip.vision_model.trunk.state_dict())
    clip.text_model.load_state_dict(loclip.text_model.state_dict())
    clip.visual_projection.load_state_dict(loclip.vision_model.visual_projection.state_dict())
    clip.text_projection.load_state_dict(loclip.text_projection.state_dict())
    return loclip.train(), clip.train()


def plain_losses() -> LossRecipe:
    """The CLIP InfoNCE term alone."""
    return LossRecipe(subcaptions=False, grouping_weight=0.0, regions=False, grounding=False)


def all_losses() -> LossRecipe:
    """Every term on: multi-positive sub-captions, grouping, region–text, dense grounding (quickstart filter)."""
    return LossRecipe(subcaptions=True, grouping_weight=0.1, regions=True, grounding=True, text_filter_by="exact")


def loclip_step(model: LoclipModel, loss: LossRecipe, batch: dict[str, Any]) -> Callable[[], float]:
    """One AdamW training step of loclip's pretraining objective on ``batch`` (a closure)."""
    objective = PretrainObjective(model, loss)
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        total, _ = objective(tensors)
        total.backward()
        opt.step()
        return float(total.detach())

    return step


def clip_step(model: CLIPModel, batch: dict[str, Any]) -> Callable[[], float]:
    """One AdamW training step of transformers' ``CLIPModel(return_loss=True)`` on the same batch."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids, mask, pixels = batch["input_ids"], batch["attention_mask"], batch["pixel_values"]

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, return_loss=True).loss
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step
