"""``LoclipLlavaForConditionalGeneration``: transformers' Llava plus ``<region>`` tokens (the CLOC* setup).

A ``<region>`` placeholder in the text is replaced by the prompter's region embedding of the matching box
(``LoclipVisionModel.region_features``, the shared-space embedding), mapped into the LLM by a 2-layer MLP
shaped like Llava's projector. ``<image>`` tokens work as in Llava. When regions are present the vision
trunk runs once per image and feeds both the image tokens and the prompter.

With no ``<region>`` token in the batch the call is handed to ``LlavaModel.forward`` unchanged, so the
model computes exactly what ``LlavaForConditionalGeneration`` computes with the same weights.

Box answers (``config.box_answers``): ``"text"`` — the LLM writes ``[x1, y1, x2, y2]``; ``"ground"`` — it
writes ``<ground>`` and the token's last hidden state, through the ground projector, prompts the encoder's
grounding head, which draws the box (the LISA/GLaMM pattern, with the CLOC prompter as the box decoder). The
logits stay plain Llava's either way; the head is an extra read-out (``ground_boxes``) and, in training, an
extra loss (``ground_boxes=`` targets in ``forward``).
"""

from __future__ import annotations

from dataclasses import dataclass

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

from loclip.encoder.modeling import GroundingOutput, VisionEncoding

from .configuration import LoclipLlavaConfig
from .conversation import GROUND_TOKEN, REGION_TOKEN, check_region_count
from .signatures import extends


class LoclipRegionProjector(nn.Module):
    """Region embeddings ``[..., D]`` (encoder shared space) → LLM embeddings ``[..., H]``: Linear, act, Linear."""

    def __init__(self, config: LoclipLlavaConfig, reverse: bool = False) -> None:
        super().__init__()
        hidden, bias = config.text_config.hidden_size, config.multimodal_projector_bias
        self.linear_1 = nn.Linear(hidden if reverse else config.region_feature_dim, hidden, bias=bias)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(hidden, config.region_feature_dim if reverse else hidden, bias=bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class LoclipGroundProjector(LoclipRegionProjector):
    """The other way: LLM hidden states ``[..., H]`` at ``<ground>`` → phrase embeddings ``[..., D]`` in the
    encoder's text space, which prompt its grounding head."""

    def __init__(self, config: LoclipLlavaConfig) -> None:
        super().__init__(config, reverse=True)


@dataclass
class LoclipLlavaCausalLMOutput(LlavaCausalLMOutputWithPast):
    """Llava's output plus, when ``ground_boxes`` targets were given: the LM loss, the grounding loss (``loss``
    is ``lm_loss + ground_loss_weight * ground_loss``) and the head's boxes ``[B, G, 4]`` for the ``<ground>``
    tokens."""

    lm_loss: torch.FloatTensor | None = None
    ground_loss: torch.FloatTensor | None = None
    ground_pred_boxes: torch.FloatTensor | None = None


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


def check_row_counts(tokens_per_row: torch.Tensor, boxes_per_row: torch.Tensor, token: str = REGION_TOKEN) -> None:
    """``forward`` is a boundary of its own: the ``token`` tokens of each row ``[B]`` and its valid boxes ``[B]``
    must agree (``conversation.check_region_count``, naming the first row that differs)."""
    if not torch.equal(tokens_per_row, boxes_per_row):
        row = int((tokens_per_row != boxes_per_row).nonzero()[0])
        check_region_count(int(tokens_per_row[row]), int(boxes_per_row[row]), f"input_ids[{row}]", token)


def gather_rows(hidden: torch.Tensor, where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The vectors of ``hidden`` ``[B, L, H]`` where ``where`` ``[B, L]`` is True, row by row, left-aligned:
    ``[B, G, H]`` (G = most per row, at least 1) zero-padded, and their mask ``[B, G]``."""
    counts = where.sum(dim=1)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    slot = torch.arange(width, device=where.device)
    mask = slot[None] < counts[:, None]
    out = hidden.new_zeros(hidden.shape[0], width, hidden.shape[-1])
    out[mask] = hidden[where]  # both row-major
    return out, mask


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
        if config.box_answers == "ground":
            self.ground_projector = LoclipGroundProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def encode_images(self, pixel_values: torch.Tensor) -> VisionEncoding:
        """The one trunk pass that image tokens, region prompts and the grounding head share."""
        return self.vision_tower.encode(pixel_values, output_hidden_states=True)

    def image_features_from(self, enc: VisionEncoding, **vision_kwargs) -> list[torch.Tensor]:
        """Llava's projected image features of an encoding: list of B ``[N, H]``.

        ``vision_kwargs``: ``vision_feature_layer`` / ``vision_feature_select_strategy`` (config defaults).
        """
        layer = vision_kwargs.get("vision_feature_layer")
        layer = self.config.vision_feature_layer if layer is None else layer
        strategy = vision_kwargs.get("vision_feature_select_strategy") or self.config.vision_feature_select_strategy
        return list(self.multi_modal_projector(select_image_features(enc.trunk_output.hidden_states, layer, strategy)))

    def ground(
        self, enc: VisionEncoding, hidden: torch.Tensor, where: torch.Tensor
    ) -> tuple[GroundingOutput, torch.Tensor]:
        """The grounding head on the LLM's last hidden states ``hidden`` ``[B, L, H]`` at ``where`` ``[B, L]``
        (the ``<ground>`` tokens) → its output for ``[B, G]`` phrases and their mask ``[B, G]``."""
        if not hasattr(self, "ground_projector"):
            raise ValueError("this model answers boxes as text (config.box_answers='text'); it has no ground projector")
        phrases, mask = gather_rows(hidden, where)
        return self.vision_tower.grounding(enc, self.ground_projector(phrases)), mask

    @extends(LlavaModel.forward, hide=("mm_encoder_outputs",))
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        *,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
        vision_encoding: VisionEncoding | None = None,
        **kwargs,
    ) -> LlavaModelOutputWithPast:
        """Llava's forward, plus ``boxes`` ``[B, R, 4]`` normalised model-frame xyxy and ``box_mask`` ``[B, R]``
        (True = a real box): the r-th valid box of row b fills the r-th ``<region>`` token of row b.
        ``vision_encoding``: ``encode_images(pixel_values)`` already computed by the caller (who needs it too).

        Every other argument (attention mask, cache, vision feature choices, ...) goes to ``LlavaModel.forward``
        as given, under whatever name the installed transformers uses."""
        region_id = self.config.region_token_index
        if input_ids is None or (
            boxes is None and vision_encoding is None and not bool((input_ids == region_id).any())
        ):
            # the common case (every decode step): one check instead of per-row counts, then exactly plain Llava
            if boxes is not None:
                raise ValueError("boxes need input_ids (to find the <region> tokens); got inputs_embeds only")
            return super().forward(input_ids=input_ids, pixel_values=pixel_values, **kwargs)
        region_tokens = (input_ids == region_id).sum(dim=1)
        if boxes is None:
            boxes_per_row = torch.zeros_like(region_tokens)
        else:
            if box_mask is None:
                box_mask = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
            boxes_per_row = box_mask.to(torch.bool).sum(dim=1).to(region_tokens.device)
        check_row_counts(region_tokens, boxes_per_row)
        if int(region_tokens.sum()) == 0 and vision_encoding is None:  # exactly plain Llava
            return super().forward(input_ids=input_ids, pixel_values=pixel_values, **kwargs)
        if pixel_values is None and vision_encoding is None:
            raise ValueError("boxes were given without pixel_values: region embeddings are computed from the image")
        if kwargs.get("mm_encoder_outputs") is not None:
            raise ValueError("mm_encoder_outputs cannot be used with <region> tokens: the prompter needs pixel_values")
        if kwargs.pop("inputs_embeds", None) is not None:
            raise ValueError("give input_ids or inputs_embeds, not both")

        enc = vision_encoding if vision_encoding is not None else self.encode_images(pixel_values)
        image_features = self.image_features_from(enc, **kwargs)
        inputs_embeds = self.get_input_embeddings()(input_ids)
        if int(region_tokens.sum()):
            regions = self.region_projector(self.vision_tower.region_features(enc, boxes, box_mask))
            region_mask = (input_ids == region_id)[..., None].to(inputs_embeds.device)
            valid = regions[box_mask.to(torch.bool)].to(inputs_embeds.device, inputs_embeds.dtype)  # row-major
            inputs_embeds = inputs_embeds.masked_scatter(region_mask, valid)
        # Hand the image features over precomputed: LlavaModel scatters them into the image tokens (found by
        # their embedding, as for any inputs_embeds call) and runs the language model.
        kwargs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=image_features)}
        return super().forward(inputs_embeds=inputs_embeds, **kwargs)


class LoclipLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """Llava with ``<region>`` inputs; ``generate`` passes boxes to the first (prefill) step only."""

    config_class = LoclipLlavaConfig
    config: LoclipLlavaConfig

    def __init__(self, config: LoclipLlavaConfig) -> None:
        LlavaPreTrainedModel.__init__(self, config)  # as LlavaForConditionalGeneration, with our inner model
        self.model = LoclipLlavaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    # Not advertised: mm_encoder_outputs. generate() would otherwise encode the images ahead and drop
    # pixel_values, which the prompter needs for <region> tokens (and grounding).
    @extends(LlavaForConditionalGeneration.forward, hide=("mm_encoder_outputs",))
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        *,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
        ground_boxes: torch.Tensor | None = None,
        ground_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> LlavaCausalLMOutputWithPast:
        """``LlavaForConditionalGeneration.forward`` plus ``boxes`` ``[B, R, 4]`` and ``box_mask`` ``[B, R]``;
        every other argument (``attention_mask``, ``labels``, the cache, ...) is passed through as given.

        ``ground_boxes`` ``[B, G, 4]`` (normalised model-frame xyxy) + ``ground_mask`` ``[B, G]``: targets of
        the grounding head for the ``<ground>`` tokens of each row, in order (``box_answers="ground"``); the
        output is then a ``LoclipLlavaCausalLMOutput`` whose loss adds the head's loss.
        """
        if boxes is not None:
            kwargs.update(boxes=boxes, box_mask=box_mask)
        if ground_boxes is not None:
            return self._forward_with_grounding(input_ids, pixel_values, ground_boxes, ground_mask, **kwargs)
        return super().forward(input_ids=input_ids, pixel_values=pixel_values, **kwargs)

    def _ground_pass(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor, **kwargs
    ) -> tuple[LlavaModelOutputWithPast, GroundingOutput, torch.Tensor]:
        """One trunk pass, the LLM over the whole sequence, and the head on every ``<ground>`` token:
        (LLM outputs, grounding output ``[B, G, ...]``, its mask ``[B, G]``)."""
        if input_ids is None or pixel_values is None:
            raise ValueError("grounding needs input_ids (to find the <ground> tokens) and pixel_values")
        enc = self.model.encode_images(pixel_values)
        outputs = self.model(input_ids=input_ids, pixel_values=pixel_values, vision_encoding=enc, **kwargs)
        where = input_ids == self.config.ground_token_index
        grounded, mask = self.model.ground(enc, outputs.last_hidden_state, where)
        return outputs, grounded, mask

    def _forward_with_grounding(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        ground_boxes: torch.Tensor,
        ground_mask: torch.Tensor | None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> LoclipLlavaCausalLMOutput:
        if self.config.box_answers != "ground":
            raise ValueError(
                "ground_boxes were given, but this model answers boxes as text "
                "(config.box_answers='text'): it has no <ground> token or ground projector"
            )
        if ground_mask is None:
            ground_mask = torch.ones(ground_boxes.shape[:2], dtype=torch.bool, device=ground_boxes.device)
        ground_mask = ground_mask.to(torch.bool)
        tokens = (input_ids == self.config.ground_token_index).sum(dim=1)
        check_row_counts(tokens, ground_mask.sum(dim=1).to(tokens.device), GROUND_TOKEN)
        outputs, grounded, mask = self._ground_pass(input_ids, pixel_values, **kwargs)
        logits = self.lm_head(outputs.last_hidden_state)
        lm_loss = None
        if labels is not None:
            lm_loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size)
        # gather_rows left-aligns the tokens as the targets are: same [B, G] layout, G padded to >= 1
        targets = ground_boxes.new_zeros(*mask.shape, 4)
        targets[mask] = ground_boxes[ground_mask].to(targets.dtype)
        terms = self.model.vision_tower.box_head.loss(grounded, targets, mask, self.config.ground_box_loss)
        ground_loss = sum(terms.values())
        loss = ground_loss * self.config.ground_loss_weight + (lm_loss if lm_loss is not None else 0)
        # Llava's causal-LM output carries the inner model's fields (cache, hidden states, image outputs) under
        # the inner model's names: take them as they are, whatever this transformers version calls them.
        carried = {name: value for name, value in outputs.items() if name != "last_hidden_state"}
        return LoclipLlavaCausalLMOutput(
            loss=loss,
            logits=logits,
            **carried,
            lm_loss=lm_loss,
            ground_loss=ground_loss,
            ground_pred_boxes=grounded.boxes,
        )

    @torch.no_grad()
    def ground_boxes(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The grounding head's box for every ``<ground>`` token of each row of a full sequence (prompt plus
        generated answer): list of B ``[G_b, 4]`` normalised model-frame xyxy. ``boxes``/``box_mask`` fill the
        ``<region>`` tokens as in ``forward``."""
        extra = {} if boxes is None else {"boxes": boxes, "box_mask": box_mask}
        _, grounded, mask = self._ground_pass(
            input_ids, pixel_values, attention_mask=attention_mask, use_cache=False, **extra
        )
        return [grounded.boxes[b][mask[b]] for b in range(mask.shape[0])]

    def prepare_inputs_for_generation(
        self, *args, boxes: torch.Tensor | None = None, box_mask: torch.Tensor | None = None, **kwargs
    ) -> dict:
        # Boxes belong to the prompt: like pixel_values they are consumed by the prefill step; later steps read
        # the KV cache (without a cache every step re-reads the whole prompt and needs them again).
        inputs = super().prepare_inputs_for_generation(*args, **kwargs)
        if kwargs.get("is_first_iteration") or not kwargs.get("use_cache", True):
            inputs.update(boxes=boxes, box_mask=box_mask)
        return inputs
