"""``LoclipLlavaConfig``: a ``LlavaConfig`` whose vision tower is a loclip encoder, plus region tokens."""

from __future__ import annotations

from typing import Literal, get_args

from transformers import LlavaConfig

from loclip.encoder import LoclipVisionConfig
from loclip.encoder.choices import BOX_LOSSES, check_choice

BoxAnswers = Literal["text", "ground"]  # the LLM writes box text, or <ground> tokens the encoder's head draws
BOX_ANSWERS: tuple[str, ...] = get_args(BoxAnswers)


class LoclipLlavaConfig(LlavaConfig):
    r"""Llava with a ``LoclipVisionConfig`` vision tower and ``<region>`` tokens (CLOC*).

    Everything of ``LlavaConfig`` keeps its meaning (``image_token_index``, ``vision_feature_layer``,
    ``vision_feature_select_strategy``, ``projector_hidden_act``, ``multimodal_projector_bias``, ...).

    Args:
        region_token_index: id of the ``<region>`` placeholder; each one is replaced by the region embedding
            of the matching box.
        box_answers: how the model answers with boxes. ``"text"``: it writes ``[x1, y1, x2, y2]`` itself
            (Shikra/Ferret style). ``"ground"``: it writes a ``<ground>`` token, whose last hidden state,
            mapped into the encoder's text space by the ground projector, prompts the encoder's grounding
            head; the head's box replaces the token in the answer text (``LoclipLlavaForConditionalGeneration
            .ground_boxes``, ``chat``).
        ground_token_index: id of ``<ground>`` (``box_answers="ground"`` only).
        ground_loss_weight: weight of the grounding head's loss next to the LM loss.
        ground_box_loss: its box term, ``"l2"`` or ``"l1_giou"`` (as in pretraining).

    The region projector maps the prompter's region embedding *in the shared space* (``projection_dim`` wide,
    the output of ``LoclipVisionModel.region_features``) into the LLM: that is the embedding CLOC trains to
    match region captions, so it already names what the box holds.
    """

    model_type = "loclip_llava"
    attribute_map = {
        **LlavaConfig.attribute_map,
        "region_token_id": "region_token_index",
        "ground_token_id": "ground_token_index",
    }

    region_token_index: int = 32001
    box_answers: str = "text"
    ground_token_index: int | None = None
    ground_loss_weight: float = 1.0
    ground_box_loss: str = "l2"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not isinstance(self.vision_config, LoclipVisionConfig):
            raise ValueError(
                f"vision_config must be a LoclipVisionConfig (model_type 'loclip_vision_model'), got "
                f"{getattr(self.vision_config, 'model_type', type(self.vision_config).__name__)!r}"
            )
        if self.region_token_index == self.image_token_index:
            raise ValueError(f"region_token_index and image_token_index must differ, both are {self.image_token_index}")
        check_choice("box_answers", self.box_answers, BOX_ANSWERS)
        if self.box_answers == "ground" and self.ground_token_index is None:
            raise ValueError("box_answers='ground' needs ground_token_index (the id of <ground>)")
        check_choice("ground_box_loss", self.ground_box_loss, BOX_LOSSES)

    @property
    def region_feature_dim(self) -> int:
        """Width of the region embeddings entering the region projector (the encoder's shared space)."""
        return self.vision_config.projection_dim
