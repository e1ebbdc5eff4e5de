"""Putting a loclip encoder and a causal LM together into a ``LoclipLlavaForConditionalGeneration``."""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from loclip.encoder import LoclipImageProcessor, LoclipVisionModel
from loclip.encoder.boxes import NUM_BINS
from loclip.encoder.trunks import VISION_TRUNKS

from .configuration import LoclipLlavaConfig
from .conversation import IMAGE_TOKEN, REGION_TOKEN, token_id
from .modeling import LoclipLlavaForConditionalGeneration
from .processing import LoclipLlavaProcessor


def tiny_llm(
    tokenizer: Any,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 1024,
    ordinal_numbers: bool = True,
) -> LlamaForCausalLM:
    """A small random Llama over ``tokenizer``'s vocabulary (for tests and the CPU quickstart).

    ``ordinal_numbers``: start the box-coordinate tokens from ``init_number_embeddings``.
    """
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    llm = LlamaForCausalLM(config)
    if ordinal_numbers:
        init_number_embeddings(llm, tokenizer)
    return llm


@torch.no_grad()
def init_number_embeddings(llm: PreTrainedModel, tokenizer: Any, max_frequency: float = 64.0) -> int:
    """Give the whole-number tokens ``"0"`` … ``"999"`` (box text) input and output embeddings that vary
    smoothly with their value, at the scale of the other rows; returns how many tokens it set.

    Why: an LLM trained from scratch otherwise sees each coordinate token as an unrelated class and learns
    their order only from rare examples; with sinusoidal codes of ``value / 999`` (frequencies geometric
    from 1/4 to ``max_frequency`` cycles), a hidden state that points near a value scores its neighbours
    high too, so box answers learn like a regression. Only for a new LLM: a pretrained one knows numbers.
    """
    values, ids = [], []
    unk = tokenizer.unk_token_id
    for value in range(NUM_BINS):
        token_id = tokenizer.convert_tokens_to_ids(str(value))
        if token_id is not None and token_id != unk:
            values.append(value)
            ids.append(token_id)
    if not ids:
        return 0
    layers = [llm.get_input_embeddings().weight]
    head = llm.get_output_embeddings()
    if head is not None and head.weight is not layers[0]:
        layers.append(head.weight)
    hidden = layers[0].shape[1]
    n = hidden // 2
    freqs = 2 * math.pi * torch.logspace(math.log10(0.25), math.log10(max_frequency), n)
    angles = torch.tensor(values, dtype=torch.float32)[:, None] / (NUM_BINS - 1) * freqs
    codes = torch.zeros(len(ids), hidden)
    codes[:, : 2 * n] = torch.cat([angles.sin(), angles.cos()], dim=1)
    for weight in layers:
        rows = codes * (weight.std() / codes.std())  # the scale of the rows it sits among
        weight[torch.tensor(ids)] = rows.to(weight.dtype)
    return len(ids)


def select_strategy(encoder_config: Any) -> tuple[str, int]:
    """(vision_feature_select_strategy, tokens the trunk adds): drop CLIP's CLS; SigLIP has none."""
    has_cls = VISION_TRUNKS[encoder_config.trunk_config.model_type].has_cls
    return ("default", 1) if has_cls else ("full", 0)


def compose(
    encoder: LoclipVisionModel, llm: PreTrainedModel, tokenizer: Any, vision_feature_layer: int = -2
) -> LoclipLlavaForConditionalGeneration:
    """A new model holding ``encoder``'s and ``llm``'s weights plus fresh projectors.

    ``tokenizer`` must already hold ``<image>`` and ``<region>`` (``conversation.ensure_tokens``) and ``llm``'s
    embeddings must cover it (``resize_token_embeddings``).
    """
    if not isinstance(encoder, LoclipVisionModel):
        raise TypeError(f"encoder must be a LoclipVisionModel, got {type(encoder).__name__}")
    vocab = llm.get_input_embeddings().num_embeddings
    if vocab < len(tokenizer):
        raise ValueError(f"the LLM has {vocab} embeddings but the tokenizer {len(tokenizer)} tokens; resize first")
    strategy, extra = select_strategy(encoder.config)
    grid = encoder.config.grid_size
    config = LoclipLlavaConfig(
        vision_config=encoder.config, text_config=llm.config,
        image_token_index=token_id(tokenizer, IMAGE_TOKEN), region_token_index=token_id(tokenizer, REGION_TOKEN),
        vision_feature_layer=vision_feature_layer, vision_feature_select_strategy=strategy,
        image_seq_length=grid * grid + extra - (strategy == "default"),
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
    )  # fmt: skip
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
        LoclipImageProcessor(image_size=vision.image_size), tokenizer, patch_size=vision.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy, num_additional_image_tokens=extra,
        template=template,
    )  # fmt: skip
