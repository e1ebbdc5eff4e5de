"""The pretraining recipe: what `loclip-pretrain` reads from YAML and the command line.

Types and ranges are declared on the fields and checked by ``loclip.core.recipe.check``; ``validate``
checks only what involves several fields.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal, get_args

from loclip.core.messages import shown
from loclip.core.recipe import NonNegativeFloat, PositiveInt, UnitFloat
from loclip.encoder.choices import BoxLoss, GroundingHead, RegionMethod
from loclip.encoder.configuration import check_trunk_shape
from loclip.encoder.presets import TINY_SHAPE, VIT_B16_IMAGE_SIZE
from loclip.training.config import OptimRecipe, RunRecipe

from .data import DataConfig

Preset = Literal["tiny", "vit_b16"]
Variant = Literal["clip", "clip_long", "dreamlip", "dreamlip_sgl", "cloc", "cloc_roialign"]  # the learning-proof sets
PRESETS: tuple[str, ...] = get_args(Preset)
VARIANTS: tuple[str, ...] = get_args(Variant)
# The recipe fields (each also a flag) ``check_trunk_shape`` names for a tiny encoder's numbers.
FLAG_NAMES = {
    "width": "model.width",
    "heads": "model.heads",
    "patch_size": "model.patch_size",
    "image_size": "data.image_size",
    "prompter_heads": "model.prompter_heads",
}


@dataclass
class EncoderRecipe:
    """Where the encoder comes from (first that is set wins: init_from, from_clip, config, preset)."""

    preset: Preset = "tiny"  # a fresh encoder of that shape
    config: str | None = None  # a LoclipConfig JSON file or directory
    from_clip: str | None = None  # a transformers CLIPModel/SiglipModel directory (continued training)
    init_from: str | None = None  # a loclip directory (save_pretrained output)
    tokenizer: str | None = None  # tokenizer directory; default: from_clip/init_from path
    gradient_checkpointing: bool = False
    grounding_head: GroundingHead = "dense"  # dense | pooled (CLOC's); for new encoders (preset, from_clip)
    prompter_heads: PositiveInt | None = None  # attention heads of the prompter (new encoders); None: the trunk's
    # Shape of preset=tiny (both towers): width, depth, heads, patch size, embedding size; unset: TINY_SHAPE's.
    width: PositiveInt | None = None
    layers: PositiveInt | None = None
    heads: PositiveInt | None = None
    patch_size: PositiveInt | None = None
    projection_dim: PositiveInt | None = None

    @property
    def source(self) -> str:
        """Where the encoder comes from, by the field that wins: ``init_from``, ``from_clip``, ``config``, else
        the preset's name."""
        for name in ("init_from", "from_clip", "config"):
            if getattr(self, name) is not None:
                return name
        return self.preset

    def tokenizer_source(self) -> str:
        """The tokenizer directory: ``tokenizer``, else the loaded encoder's own directory."""
        source = self.tokenizer or self.init_from or self.from_clip
        if source is None:
            raise ValueError(
                f"model.tokenizer is not set: an encoder built from "
                f"{'model.config' if self.config else 'model.preset'} needs a tokenizer directory"
            )
        return source

    def validate(self, image_size: int) -> None:
        """Refuse a field that does nothing for this encoder's source, fill the tiny shape's unset numbers,
        and check them (``check_trunk_shape``, naming the flags) against ``image_size`` (``data.image_size``)."""
        source = self.source
        why = f"model.preset is {source!r}" if source in PRESETS else f"the encoder comes from model.{source}"
        for name in (*TINY_SHAPE, "prompter_heads"):
            value = getattr(self, name)
            shapes = "the tiny preset" if name in TINY_SHAPE else "an encoder built from model.preset"
            if value is not None and source != "tiny" and not (name == "prompter_heads" and source in PRESETS):
                raise ValueError(f"model.{name} = {shown(value)} does nothing here: it shapes {shapes}, and {why}")
        if source == "tiny":
            for name, default in TINY_SHAPE.items():
                if getattr(self, name) is None:
                    setattr(self, name, default)
            check_trunk_shape(self.width, self.heads, self.patch_size, image_size, self.prompter_heads, FLAG_NAMES)
        elif source == "vit_b16" and image_size != VIT_B16_IMAGE_SIZE:
            raise ValueError(
                f"data.image_size = {shown(image_size)}: model.preset 'vit_b16' takes {VIT_B16_IMAGE_SIZE} px images"
            )


@dataclass
class LossRecipe:
    """Which terms train the encoder, and their weights."""

    contrastive: Literal["infonce", "siglip"] = "infonce"
    local_loss: bool = True  # each rank scores its own rows against the gathered batch
    subcaptions: bool = True  # DreamLIP multi-positive loss over K sub-captions
    subcaption_weight: NonNegativeFloat = 1.0
    subcaption_filter: Literal["none", "exact"] = "none"  # exact: a sentence repeated by another image is no negative
    grouping_weight: NonNegativeFloat = 0.0  # DreamLIP sub-caption grouping loss (0 = off)
    grouping_delta: UnitFloat = 0.5
    grouping_negatives: Literal["image", "batch"] = "image"  # image (paper) | batch
    grouping_text_grad: bool = True  # False: the grouping loss trains the patches only (text side detached)
    regions: bool = True  # CLOC region-text loss
    region_method: RegionMethod = "prompter"  # prompter (CLOC) | roialign (baseline)
    region_lambda: NonNegativeFloat = 1.0  # region terms x lambda x share of images with regions
    text_filter: UnitFloat = 0.9  # region negatives with caption similarity above this leave the denominator
    text_filter_by: Literal["embedding", "exact"] = "embedding"  # embedding (paper) | exact (identical captions)
    grounding: bool = True  # CLOC box head on phrase prompts (prompter only)
    grounding_kind: BoxLoss = "l2"  # l2 (paper) | l1_giou
    grounding_weight: NonNegativeFloat = 1.0

    def validate(self) -> None:
        if self.grounding and self.region_method != "prompter":
            raise ValueError("loss.grounding needs loss.region_method=prompter (the box head reads prompter output)")


@dataclass
class PretrainEvalRecipe:
    """Held-out evaluation run by the periodic hook and at the end."""

    synth_dir: str | None = None  # a synthetic-world directory with val/ (and novel/) splits
    max_scenes: PositiveInt = 200
    batch_size: PositiveInt = 64


@dataclass
class PretrainRecipe:
    data: DataConfig = field(default_factory=DataConfig)
    model: EncoderRecipe = field(default_factory=EncoderRecipe)
    loss: LossRecipe = field(default_factory=LossRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    run: RunRecipe = field(default_factory=RunRecipe)
    eval: PretrainEvalRecipe = field(default_factory=PretrainEvalRecipe)

    def validate(self) -> None:
        self.loss.validate()
        self.model.validate(self.data.image_size)

    def check_inputs(self) -> None:
        """What a run needs besides valid fields, checked before it starts: a data source and a tokenizer (a
        recipe may leave them to the command, as the quickstart does, so ``validate`` does not ask)."""
        if not self.data.train_shards and not self.data.jsonl:
            raise ValueError("data.train_shards and data.jsonl are both unset: the recipe gives nothing to train on")
        self.model.tokenizer_source()


SGL_WEIGHT = 1.0  # dreamlip_sgl's grouping weight unless the recipe sets one (docs/results.md says why)


def apply_variant(recipe: PretrainRecipe, variant: str) -> PretrainRecipe:
    """The learning-proof variants: which loss terms and which caption are used (same data, steps and seed).

    ``clip``: CLIP loss on the raw caption. ``clip_long``: CLIP loss on the whole long caption, cut at
    ``max_text_length`` tokens. ``dreamlip``: + multi-positive loss over K sub-captions. ``dreamlip_sgl``: + the
    sub-caption grouping loss (``loss.grouping_weight``, ``SGL_WEIGHT`` when the recipe leaves it at 0) against the
    batch's sub-captions.
    ``cloc``: dreamlip + region-text and grounding losses on the Prompter. ``cloc_roialign``: the region loss on
    RoIAlign features instead.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    loss = recipe.loss
    loss.subcaptions = variant not in ("clip", "clip_long")
    loss.regions = variant in ("cloc", "cloc_roialign")
    loss.region_method = "roialign" if variant == "cloc_roialign" else "prompter"
    loss.grounding = variant == "cloc"
    if variant == "clip_long":
        recipe.data.caption_source = "long_full"
    if variant == "dreamlip_sgl":
        loss.grouping_weight = loss.grouping_weight or SGL_WEIGHT
        loss.grouping_negatives = "batch"  # the image's own sub-captions only (the paper's) measured no gain here
    return recipe


_RENAMED = {"ModelRecipe": "EncoderRecipe", "EvalRecipe": "PretrainEvalRecipe"}  # until the next release


def __getattr__(name: str):
    if name in _RENAMED:
        warnings.warn(
            f"loclip.pretrain.config.{name} is now {_RENAMED[name]} (the finetuning recipe had "
            "sections of the same names)",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
