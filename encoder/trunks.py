"""What loclip needs to know about each supported transformers tower, keyed by config ``model_type``.

A small table instead of name matching: adding a tower means adding a row here.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import (
    CLIPTextModel,
    CLIPVisionModel,
    PreTrainedConfig,
    PreTrainedModel,
    SiglipTextModel,
    SiglipVisionModel,
)


@dataclass(frozen=True)
class VisionTrunkSpec:
    """model_class: the transformers tower class.
    has_cls: the first output token is a class token (not a patch).
    projects: the pooled output needs loclip's ``visual_projection`` to reach the shared space (CLIP);
    otherwise the trunk's pooled output already is the embedding (SigLIP's attention-pooling head).
    patch_norm: name of the trunk's final norm that CLIP applies to the pooled token only; loclip applies
    it to the patch tokens too for dense features. ``None`` where ``last_hidden_state`` is already normed.
    """

    model_class: type[PreTrainedModel]
    has_cls: bool
    projects: bool
    patch_norm: str | None


@dataclass(frozen=True)
class TextTowerSpec:
    """projects: the pooled output needs loclip's ``text_projection`` (CLIP); SigLIP has its own head.
    trim_padding: trailing padding columns may be dropped without changing any output: attention is causal
    and pooling reads the EOS token (CLIP). Not SigLIP, which pools the last position, padding included.
    """

    model_class: type[PreTrainedModel]
    projects: bool
    trim_padding: bool = False

    def output_dim(self, config: PreTrainedConfig) -> int | None:
        """Embedding size the tower itself outputs, or ``None`` when loclip projects it."""
        if self.projects:
            return None
        return getattr(config, "projection_size", None) or config.hidden_size


VISION_TRUNKS: dict[str, VisionTrunkSpec] = {
    "clip_vision_model": VisionTrunkSpec(CLIPVisionModel, has_cls=True, projects=True, patch_norm="post_layernorm"),
    "siglip_vision_model": VisionTrunkSpec(SiglipVisionModel, has_cls=False, projects=False, patch_norm=None),
}

TEXT_TOWERS: dict[str, TextTowerSpec] = {
    "clip_text_model": TextTowerSpec(CLIPTextModel, projects=True, trim_padding=True),
    "siglip_text_model": TextTowerSpec(SiglipTextModel, projects=False),
}

# model_type of a full dual-tower checkpoint → (vision sub-config type, text sub-config type)
DUAL_TOWERS: dict[str, tuple[str, str]] = {
    "clip": ("clip_vision_model", "clip_text_model"),
    "siglip": ("siglip_vision_model", "siglip_text_model"),
}
