"""Named encoder configs: tiny ones for tests and the CPU quickstart, ViT-B/16 for real runs."""

from __future__ import annotations

from transformers import CLIPTextConfig, CLIPVisionConfig, SiglipTextConfig, SiglipVisionConfig

from .configuration import LoclipConfig, LoclipVisionConfig

# The tiny preset's shape (both towers); recipes that leave a number unset get it from here.
TINY_SHAPE: dict[str, int] = {"width": 64, "layers": 2, "heads": 4, "patch_size": 8, "projection_dim": 32}


def tiny_config(
    vocab_size: int = 64,
    image_size: int = 64,
    patch_size: int = TINY_SHAPE["patch_size"],
    width: int = TINY_SHAPE["width"],
    layers: int = TINY_SHAPE["layers"],
    heads: int = TINY_SHAPE["heads"],
    projection_dim: int = TINY_SHAPE["projection_dim"],
    max_text_length: int = 32,
    trunk: str = "clip",
    pad_token_id: int = 0,
    bos_token_id: int = 2,
    eos_token_id: int = 3,
) -> LoclipConfig:
    """A few-hundred-thousand-parameter encoder that trains in minutes on a CPU."""
    tokens = dict(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    tower = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads)
    if trunk == "clip":
        vision = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, projection_dim=projection_dim, **tower)
        text = CLIPTextConfig(
            vocab_size=vocab_size,
            max_position_embeddings=max_text_length,
            projection_dim=projection_dim,
            **tower,
            **tokens,
        )
        proj = projection_dim
    elif trunk == "siglip":
        vision = SiglipVisionConfig(image_size=image_size, patch_size=patch_size, **tower)
        text = SiglipTextConfig(
            vocab_size=vocab_size, max_position_embeddings=max_text_length, projection_size=width, **tower, **tokens
        )
        proj = width
    else:
        raise ValueError(f"trunk must be 'clip' or 'siglip', got {trunk!r}")
    return LoclipConfig(
        vision_config=LoclipVisionConfig(trunk_config=vision, projection_dim=proj),
        text_config=text,
        logit_bias_init_value=-10.0 if trunk == "siglip" else None,
    )


VIT_B16_IMAGE_SIZE = 224


def vit_b16_config(
    vocab_size: int = 49408,
    max_text_length: int = 77,
    pad_token_id: int = 1,
    bos_token_id: int = 49406,
    eos_token_id: int = 49407,
) -> LoclipConfig:
    """ViT-B/16 at 224 px with a 12-layer 512-wide CLIP text tower (the CLIP ViT-B/16 shape); the token ids
    default to CLIP's tokenizer (the text tower pools at ``eos_token_id``: pass your tokenizer's)."""
    tokens = dict(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    vision = CLIPVisionConfig(
        image_size=VIT_B16_IMAGE_SIZE,
        patch_size=16,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        projection_dim=512,
    )
    text = CLIPTextConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_text_length,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        projection_dim=512,
        **tokens,
    )
    return LoclipConfig(vision_config=LoclipVisionConfig(trunk_config=vision, projection_dim=512), text_config=text)
