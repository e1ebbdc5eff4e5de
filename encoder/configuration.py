"""Configs of the loclip encoder: a CLIP/SigLIP trunk plus the CLOC prompter and box head.

Both are transformers ``PreTrainedConfig`` dataclasses, so ``save_pretrained``/``from_pretrained``,
``AutoConfig`` and composition inside ``LlavaConfig(vision_config=...)`` work as for built-in models.
"""

from __future__ import annotations

from collections.abc import Mapping

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from loclip.core.messages import shown

from .choices import GROUNDING_HEADS, check_choice
from .trunks import TEXT_TOWERS, VISION_TRUNKS

# What ``check_trunk_shape`` calls each number when a config is checked; a recipe passes its own flag names.
CONFIG_NAMES = {
    "width": "trunk_config.hidden_size",
    "heads": "trunk_config.num_attention_heads",
    "patch_size": "trunk_config.patch_size",
    "image_size": "trunk_config.image_size",
    "prompter_heads": "prompter_num_heads",
}


def check_trunk_shape(
    width: int,
    heads: int,
    patch_size: int,
    image_size: int,
    prompter_heads: int | None = None,
    names: Mapping[str, str] = CONFIG_NAMES,
) -> None:
    """The numbers a vision trunk and its prompter must agree on, checked before any layer is built (a
    ``ValueError`` naming each number by ``names``: the config's fields, or the flags of a recipe).

    Attention splits ``width`` over ``heads`` (the trunk's and the prompter's); the sinusoidal box encoding
    splits it in four; a patch must fit in the image (a larger one leaves no patch to embed)."""

    def named(key: str, value: object) -> str:
        return f"{names[key]} = {shown(value)}"

    for key, value in (
        ("width", width),
        ("heads", heads),
        ("patch_size", patch_size),
        ("image_size", image_size),
        ("prompter_heads", prompter_heads),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{named(key, value)}: must be >= 1")
    if width % 4:
        raise ValueError(f"{named('width', width)}: must be divisible by 4 (the sinusoidal box encoding)")
    if width % heads:
        raise ValueError(f"{named('width', width)}: must be divisible by {named('heads', heads)} (attention heads)")
    if prompter_heads is not None and width % prompter_heads:
        raise ValueError(f"{named('prompter_heads', prompter_heads)}: must divide {named('width', width)}")
    if patch_size > image_size:
        raise ValueError(f"{named('patch_size', patch_size)}: larger than {named('image_size', image_size)}")


def trunk_view(name: str) -> property:
    """A read-only property giving the trunk config's int ``name`` (``config.trunk_config.<name>``)."""

    def read(config: LoclipVisionConfig) -> int:
        return getattr(config.trunk_config, name)

    return property(read, doc=f"``trunk_config.{name}`` (read-only).")


class LoclipVisionConfig(PreTrainedConfig):
    r"""Vision half: a transformers CLIP or SigLIP vision trunk and the CLOC region modules.

    Args:
        trunk_config: config of the vision trunk (``CLIPVisionConfig`` or ``SiglipVisionConfig``, or a dict
            with its ``model_type``). Defaults to a ViT-B/16 at 224 px.
        projection_dim: size of the shared image-text embedding space.
        text_embed_dim: size of the phrase embeddings the prompter accepts (the text tower's output);
            defaults to ``projection_dim``.
        prompter_num_heads: attention heads of the prompter layer (default: the trunk's).
        prompter_mlp_ratio: MLP width of the prompter layer, as a multiple of the trunk width.
        box_head_hidden_size: hidden width of the 2-layer box head (default: the trunk width).
        grounding_head: ``"dense"`` (default: the phrase-prompted embedding scores every patch cell and the best
            cell's box is the answer, ``DenseBoxHead``) or ``"pooled"`` (CLOC's MLP on the pooled
            phrase-prompted embedding, ``BoxHead``).
        pos_max_frequency: highest frequency (in cycles over the image) of the sinusoidal box/patch encoding.
        roi_output_size: RoIAlign bins per side for the baseline region embedding.
        roi_sampling_ratio: bilinear samples per bin side in RoIAlign.
    """

    model_type = "loclip_vision_model"
    base_config_key = "vision_config"
    sub_configs_defaults = {
        "trunk_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={"patch_size": 16, "image_size": 224, "hidden_act": "quick_gelu"},
        ),
    }

    trunk_config: dict | PreTrainedConfig | None = None
    projection_dim: int = 512
    text_embed_dim: int | None = None
    prompter_num_heads: int | None = None
    prompter_mlp_ratio: float = 4.0
    box_head_hidden_size: int | None = None
    grounding_head: str = "dense"
    pos_max_frequency: float = 128.0
    roi_output_size: int = 2
    roi_sampling_ratio: int = 2
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        trunk_type = self.trunk_config.model_type
        if trunk_type not in VISION_TRUNKS:
            raise ValueError(f"trunk_config.model_type must be one of {sorted(VISION_TRUNKS)}, got {trunk_type!r}")
        if self.text_embed_dim is None:
            self.text_embed_dim = self.projection_dim
        if not VISION_TRUNKS[trunk_type].projects and self.projection_dim != self.trunk_config.hidden_size:
            raise ValueError(
                f"projection_dim={self.projection_dim} must equal the {trunk_type} hidden_size "
                f"({self.trunk_config.hidden_size}): that trunk has no projection layer"
            )
        check_choice("grounding_head", self.grounding_head, GROUNDING_HEADS)
        check_trunk_shape(
            self.hidden_size,
            self.num_attention_heads,
            self.patch_size,
            self.image_size,
            self.prompter_num_heads,
            CONFIG_NAMES,
        )

    # Read-only views of the trunk that MLLM code (e.g. Llava's projector) expects on a vision config.
    hidden_size = trunk_view("hidden_size")
    image_size = trunk_view("image_size")
    patch_size = trunk_view("patch_size")
    num_attention_heads = trunk_view("num_attention_heads")
    num_hidden_layers = trunk_view("num_hidden_layers")

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size


class LoclipConfig(PreTrainedConfig):
    r"""The whole encoder: ``LoclipVisionConfig`` + a CLIP or SigLIP text tower + contrastive temperature.

    Args:
        vision_config: ``LoclipVisionConfig`` (or dict).
        text_config: ``CLIPTextConfig`` or ``SiglipTextConfig`` (or dict with ``model_type``).
        projection_dim: shared embedding size; must match ``vision_config.projection_dim``.
        logit_scale_init_value: initial log of the contrastive temperature's inverse (CLIP: log(1/0.07)).
        logit_bias_init_value: initial logit bias for the SigLIP sigmoid loss; ``None`` for no bias.
    """

    model_type = "loclip"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=LoclipVisionConfig),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_text_model"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projection_dim: int | None = None
    logit_scale_init_value: float = 2.6592
    logit_bias_init_value: float | None = None
    initializer_factor: float = 1.0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.text_config.model_type not in TEXT_TOWERS:
            raise ValueError(
                f"text_config.model_type must be one of {sorted(TEXT_TOWERS)}, got {self.text_config.model_type!r}"
            )
        if self.projection_dim is None:
            self.projection_dim = self.vision_config.projection_dim
        if self.vision_config.projection_dim != self.projection_dim:
            raise ValueError(
                f"projection_dim={self.projection_dim} differs from vision_config.projection_dim="
                f"{self.vision_config.projection_dim}"
            )
        if self.vision_config.text_embed_dim != self.projection_dim:
            raise ValueError(
                f"vision_config.text_embed_dim={self.vision_config.text_embed_dim} must equal projection_dim="
                f"{self.projection_dim}: phrase prompts are text embeddings"
            )
        text_out = TEXT_TOWERS[self.text_config.model_type].output_dim(self.text_config)
        if text_out is not None and text_out != self.projection_dim:
            raise ValueError(
                f"the {self.text_config.model_type} tower outputs {text_out}-d embeddings and has no projection; "
                f"projection_dim is {self.projection_dim}"
            )
