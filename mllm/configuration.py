"""``LoclipLlavaConfig``: a ``LlavaConfig`` whose vision tower is a loclip encoder, plus region tokens."""

from __future__ import annotations

from transformers import LlavaConfig

from loclip.encoder import LoclipVisionConfig


class LoclipLlavaConfig(LlavaConfig):
    r"""Llava with a ``LoclipVisionConfig`` vision tower and ``<region>`` tokens (CLOC*).

    Everything of ``LlavaConfig`` keeps its meaning (``image_token_index``, ``vision_feature_layer``,
    ``vision_feature_select_strategy``, ``projector_hidden_act``, ``multimodal_projector_bias``, ...).

    Args:
        region_token_index: id of the ``<region>`` placeholder; each one is replaced by the region embedding
            of the matching box.

    The region projector maps the prompter's region embedding *in the shared space* (``projection_dim`` wide,
    the output of ``LoclipVisionModel.region_features``) into the LLM: that is the embedding CLOC trains to
    match region captions, so it already names what the box holds.
    """

    model_type = "loclip_llava"
    attribute_map = {**LlavaConfig.attribute_map, "region_token_id": "region_token_index"}

    region_token_index: int = 32001

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not isinstance(self.vision_config, LoclipVisionConfig):
            raise ValueError(
                f"vision_config must be a LoclipVisionConfig (model_type 'loclip_vision_model'), got "
                f"{getattr(self.vision_config, 'model_type', type(self.vision_config).__name__)!r}"
            )
        if self.region_token_index == self.image_token_index:
            raise ValueError(f"region_token_index and image_token_index must differ, both are {self.image_token_index}")

    @property
    def region_feature_dim(self) -> int:
        """Width of the region embeddings entering the region projector (the encoder's shared space)."""
        return self.vision_config.projection_dim
