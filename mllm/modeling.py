"""``LoclipLlavaForConditionalGeneration``: transformers' Llava plus ``<region>`` tokens (the CLOC* setup).

A ``<region>`` placeholder in the text is replaced by the prompter's region embedding of the matching box
(``LoclipVisionModel.region_features``, the shared-space embedding), mapped into the LLM by a 2-layer MLP
shaped like Llava's projector. ``<image>`` tokens work as in Llava. When regions are present the vision
trunk runs once per image and feeds both the image tokens and the prompter.

With no ``<region>`` token in the batch the call is handed to ``LlavaModel.forward`` unchanged, so the
model computes exactly what ``LlavaForConditionalGeneration`` computes with the same weights.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, LlavaForConditionalGeneration, LlavaModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava.modeling_llava import (
    LlavaCausalLMOutputWithPast,
    LlavaModelOutputWithPast,
    LlavaMultiModalProjector,
    LlavaPreTrainedModel,
)

from .configuration import LoclipLlavaConfig


class LoclipRegionProjector(nn.Module):
    """Region embeddings ``[..., D]`` (encoder shared space) → LLM embeddings ``[..., H]``: Linear, act, Linear."""

    def __init__(self, config: LoclipLlavaConfig) -> None:
        super().__init__()
        hidden, bias = config.text_config.hidden_size, config.multimodal_projector_bias
        self.linear_1 = nn.Linear(config.region_feature_dim, hidden, bias=bias)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(hidden, hidden, bias=bias)

    def forward(self, region_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(region_features)))


def select_image_features(
    hidden_states: tuple[torch.Tensor, ...], layer: int | list[int], strategy: str
) -> torch.Tensor:
    """Llava's choice of vision features: layer(s) of ``hidden_states``, CLS dropped for ``"default"``.

    ``hidden_states``: the trunk's per-layer ``[B, 1 + N, W]`` (CLIP) tensors → ``[B, N', W * len(layers)]``.
    """
    layers = [layer] if isinstance(layer, int) else list(layer)
    picked = [hidden_states[i] for i in layers]
    if strategy == "default":
        picked = [h[:, 1:] for h in picked]
    return torch.cat(picked, dim=-1)


def count_mismatch(region_tokens: torch.Tensor, boxes_per_row: torch.Tensor) -> str | None:
    """A message when the ``<region>`` tokens per row ``[B]`` and valid boxes per row ``[B]`` disagree."""
    if torch.equal(region_tokens, boxes_per_row):
        return None
    return (
        f"<region> tokens and boxes disagree: {int(region_tokens.sum())} <region> tokens in input_ids "
        f"(per row {region_tokens.tolist()}) but {int(boxes_per_row.sum())} boxes "
        f"(per row {boxes_per_row.tolist()}); give one box per <region>, in order"
    )


class LoclipLlavaModel(LlavaModel):
    """``LlavaModel`` with a loclip vision tower and a region projector (see the module docstring)."""

    config_class = LoclipLlavaConfig
    config: LoclipLlavaConfig

    def __init__(self, config: LoclipLlavaConfig) -> None:
        # LlavaModel.__init__ ends in post_init(); build its three parts here so the region projector is
        # created before weights are initialised (and the LLM is not built twice).
        LlavaPreTrainedModel.__init__(self, config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = LlavaMultiModalProjector(config)
        self.region_projector = LoclipRegionProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_region_embeddings(
        self, pixel_values: torch.Tensor, boxes: torch.Tensor, box_mask: torch.Tensor | None = None, **vision_kwargs
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """One trunk pass → (Llava image features, list of B ``[N, H]``; region embeddings ``[B, R, H]``).

        ``vision_kwargs``: ``vision_feature_layer`` / ``vision_feature_select_strategy`` (config defaults).
        """
        layer = vision_kwargs.get("vision_feature_layer")
        layer = self.config.vision_feature_layer if layer is None else layer
        strategy = vision_kwargs.get("vision_feature_select_strategy") or self.config.vision_feature_select_strategy
        enc = self.vision_tower.encode(pixel_values, output_hidden_states=True)
        image_features = self.multi_modal_projector(select_image_features(enc.trunk_output.hidden_states, layer, strategy))
        regions = self.region_projector(self.vision_tower.region_features(enc, boxes, box_mask))
        return list(image_features), regions

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> LlavaModelOutputWithPast:
        """Llava's forward, plus ``boxes`` ``[B, R, 4]`` normalised model-frame xyxy and ``box_mask`` ``[B, R]``
        (True = a real box): the r-th valid box of row b fills the r-th ``<region>`` token of row b."""
        vision_kwargs = dict(vision_feature_layer=vision_feature_layer,
                             vision_feature_select_strategy=vision_feature_select_strategy)
        plain = dict(attention_mask=attention_mask, position_ids=position_ids, past_key_values=past_key_values,
                     **vision_kwargs, **kwargs)
        if input_ids is None:
            if boxes is not None:
                raise ValueError("boxes need input_ids (to find the <region> tokens); got inputs_embeds only")
            return super().forward(pixel_values=pixel_values, inputs_embeds=inputs_embeds, **plain)
        if boxes is None and not bool((input_ids == self.config.region_token_index).any()):
            # the common case (every decode step): one check instead of per-row counts, then exactly plain Llava
            return super().forward(input_ids=input_ids, pixel_values=pixel_values, inputs_embeds=inputs_embeds, **plain)
        region_tokens = (input_ids == self.config.region_token_index).sum(dim=1)
        if boxes is None:
            boxes_per_row = torch.zeros_like(region_tokens)
        else:
            if box_mask is None:
                box_mask = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
            boxes_per_row = box_mask.to(torch.bool).sum(dim=1).to(region_tokens.device)
        message = count_mismatch(region_tokens, boxes_per_row)
        if message is not None:
            raise ValueError(message)
        if int(region_tokens.sum()) == 0:  # exactly plain Llava
            return super().forward(input_ids=input_ids, pixel_values=pixel_values, inputs_embeds=inputs_embeds, **plain)
        if pixel_values is None:
            raise ValueError("boxes were given without pixel_values: region embeddings are computed from the image")
        if plain.pop("mm_encoder_outputs", None) is not None:
            raise ValueError("mm_encoder_outputs cannot be used with <region> tokens: the prompter needs pixel_values")
        if inputs_embeds is not None:
            raise ValueError("give input_ids or inputs_embeds, not both")

        image_features, regions = self.get_region_embeddings(pixel_values, boxes, box_mask, **vision_kwargs)
        inputs_embeds = self.get_input_embeddings()(input_ids)
        region_mask = (input_ids == self.config.region_token_index)[..., None].to(inputs_embeds.device)
        valid = regions[box_mask.to(torch.bool)].to(inputs_embeds.device, inputs_embeds.dtype)  # row-major order
        inputs_embeds = inputs_embeds.masked_scatter(region_mask, valid)
        # Hand the image features over precomputed: LlavaModel scatters them into the image tokens (found by
        # their embedding, as for any inputs_embeds call) and runs the language model.
        images = {"image": BaseModelOutputWithPooling(pooler_output=image_features)}
        return super().forward(inputs_embeds=inputs_embeds, mm_encoder_outputs=images, **plain)


class LoclipLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """Llava with ``<region>`` inputs; ``generate`` passes boxes to the first (prefill) step only."""

    config_class = LoclipLlavaConfig
    config: LoclipLlavaConfig

    def __init__(self, config: LoclipLlavaConfig) -> None:
        LlavaPreTrainedModel.__init__(self, config)  # as LlavaForConditionalGeneration, with our inner model
        self.model = LoclipLlavaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> LlavaCausalLMOutputWithPast:
        """``LlavaForConditionalGeneration.forward`` plus ``boxes`` ``[B, R, 4]`` and ``box_mask`` ``[B, R]``."""
        if boxes is not None:
            kwargs.update(boxes=boxes, box_mask=box_mask)
        return super().forward(
            input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, labels=labels, **kwargs
        )

    def prepare_inputs_for_generation(
        self, *args, boxes: torch.Tensor | None = None, box_mask: torch.Tensor | None = None, **kwargs
    ) -> dict:
        # Boxes belong to the prompt: like pixel_values they are consumed by the prefill step; later steps read
        # the KV cache (without a cache every step re-reads the whole prompt and needs them again).
        inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        if kwargs.get("is_first_iteration") or not kwargs.get("use_cache", True):
            inputs.update(boxes=boxes, box_mask=box_mask)
        return inputs
