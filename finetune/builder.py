"""Putting a loclip encoder and a causal LM together into a ``LoclipLlavaForConditionalGeneration``."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from loclip.encoder import LoclipImageProcessor, LoclipVisionModel
from loclip.encoder.trunks import VISION_TRUNKS
from loclip.mllm.configuration import LoclipLlavaConfig
from loclip.mllm.conversation import GROUND_TOKEN, IMAGE_TOKEN, REGION_TOKEN, token_id
from loclip.mllm.modeling import LoclipLlavaForConditionalGeneration
from loclip.mllm.processing import LoclipLlavaProcessor


def tiny_llm(
    tokenizer: Any, hidden_size: int = 128, layers: int = 2, heads: int = 4, max_positions: int = 1024
) -> LlamaForCausalLM:
    """A small random Llama over ``tokenizer``'s vocabulary (for tests and the CPU quickstart)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


VOCAB_PADDING = 1024  # LLMs pad their embedding table past the tokenizer (Qwen2.5: 151,665 tokens, 151,936 rows)


def check_tokenizer_fits(tokenizer: Any, llm_config: Any, tokenizer_source: str, llm_source: str) -> None:
    """``ValueError`` naming both when ``tokenizer`` (before loclip's tokens are added) cannot be the LLM's own:
    more tokens than its embedding rows, far fewer (beyond ``VOCAB_PADDING``), or different BOS/EOS ids.

    Why: an LLM paired with another tokenizer trains and generates without an error, only nonsense.
    """
    vocab = getattr(llm_config, "vocab_size", None) or getattr(llm_config.get_text_config(), "vocab_size", None)
    size = len(tokenizer)
    problems = []
    if vocab is not None and not vocab - VOCAB_PADDING <= size <= vocab:
        problems.append(f"{size:,} tokens against the LLM's {vocab:,} embedding rows")
    for name in ("bos_token_id", "eos_token_id"):
        mine, theirs = getattr(tokenizer, name, None), getattr(llm_config, name, None)
        allowed = theirs if isinstance(theirs, (list, tuple)) else [theirs]
        if mine is not None and theirs is not None and mine not in allowed:
            problems.append(f"{name} {mine} against the LLM's {theirs}")
    if problems:
        raise ValueError(
            f"model.tokenizer {tokenizer_source!r} does not belong to model.llm {llm_source!r}: "
            f"{'; '.join(problems)}. Leave model.tokenizer unset to use the LLM's own tokenizer."
        )


def add_token_rows(llm: PreTrainedModel, ids: list[int]) -> list[int]:
    """Give the new tokens ``ids`` (loclip's, the last ones of the tokenizer) deliberate embedding rows, growing
    the table when they lie past it: each starts as the mean of the rows before the first new id, plus a tiny
    fixed offset (1e-3 of their spread), in the input table and, when untied, the output head. Returns ``ids``.

    Rows already there (a vocabulary padded past its tokenizer) are re-initialised too: they were never trained.
    Why the mean: a random row can start with a logit far above the pretrained tokens' (the LLM would emit it
    everywhere) or far below (never learnable in a short run); the mean starts it as an average token. Why the
    offset: Llava finds ``<image>`` in ``inputs_embeds`` by comparing embeddings, so two identical new rows
    (``<image>`` and ``<ground>``) would be taken for one another. With tied embeddings the output row is the
    same tensor, so both stay consistent.
    """
    if not ids:
        return []
    if max(ids) >= llm.get_input_embeddings().num_embeddings:
        llm.resize_token_embeddings(max(ids) + 1, mean_resizing=False)
    known = min(ids)  # rows below the first new id belong to the pretrained tokenizer
    with torch.no_grad():
        layers = [llm.get_input_embeddings().weight]
        output = llm.get_output_embeddings()
        if output is not None and output.weight is not layers[0]:
            layers.append(output.weight)
        noise = torch.Generator().manual_seed(0)
        for weight in layers:
            spread = weight[:known].std(0, keepdim=True)
            offset = torch.randn(len(ids), weight.shape[1], generator=noise).to(weight) * 1e-3 * spread
            weight[ids] = weight[:known].mean(0, keepdim=True) + offset
    return list(ids)


def select_strategy(encoder_config: Any) -> tuple[str, int]:
    """(vision_feature_select_strategy, tokens the trunk adds): drop CLIP's CLS; SigLIP has none."""
    has_cls = VISION_TRUNKS[encoder_config.trunk_config.model_type].has_cls
    return ("default", 1) if has_cls else ("full", 0)


def compose(
    encoder: LoclipVisionModel,
    llm: PreTrainedModel,
    tokenizer: Any,
    vision_feature_layer: int = -2,
    box_answers: str = "text",
    ground_loss_weight: float = 1.0,
) -> LoclipLlavaForConditionalGeneration:
    """A new model holding ``encoder``'s and ``llm``'s weights plus fresh projectors.

    ``tokenizer`` must already hold ``<image>`` and ``<region>`` (and ``<ground>`` for ``box_answers="ground"``;
    ``conversation.ensure_tokens``) and ``llm``'s embeddings must cover it (``resize_token_embeddings``).
    """
    if not isinstance(encoder, LoclipVisionModel):
        raise TypeError(f"encoder must be a LoclipVisionModel, got {type(encoder).__name__}")
    vocab = llm.get_input_embeddings().num_embeddings
    if vocab < len(tokenizer):
        raise ValueError(f"the LLM has {vocab} embeddings but the tokenizer {len(tokenizer)} tokens; resize first")
    strategy, extra = select_strategy(encoder.config)
    grid = encoder.config.grid_size
    config = LoclipLlavaConfig(
        vision_config=encoder.config,
        text_config=llm.config,
        image_token_index=token_id(tokenizer, IMAGE_TOKEN),
        region_token_index=token_id(tokenizer, REGION_TOKEN),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=strategy,
        image_seq_length=grid * grid + extra - (strategy == "default"),
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
        box_answers=box_answers,
        ground_loss_weight=ground_loss_weight,
        ground_token_index=token_id(tokenizer, GROUND_TOKEN) if box_answers == "ground" else None,
    )
    model = LoclipLlavaForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(encoder.state_dict())
    model.model.language_model.load_state_dict(llm.get_decoder().state_dict())
    model.lm_head.load_state_dict(llm.get_output_embeddings().state_dict())
    return model


def make_processor(config: LoclipLlavaConfig, tokenizer: Any, template: str = "auto") -> LoclipLlavaProcessor:
    """The processor matching a model config (image size, patch size, image token count)."""
    vision = config.vision_config
    _, extra = select_strategy(vision)
    return LoclipLlavaProcessor(
        LoclipImageProcessor(image_size=vision.image_size),
        tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=extra,
        template=template,
    )
