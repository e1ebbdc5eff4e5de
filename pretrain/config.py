"""The pretraining recipe: what `loclip-pretrain` reads from YAML and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from loclip.encoder.configuration import GROUNDING_HEADS

from loclip.training.config import OptimRecipe, RunRecipe

from .data import DataConfig

PRESETS = ("tiny", "vit_b16")
VARIANTS = ("clip", "dreamlip", "cloc", "cloc_roialign")


@dataclass
class ModelRecipe:
    """Where the encoder comes from (first that is set wins: init_from, from_clip, config, preset)."""

    preset: str = "tiny"  # tiny | vit_b16: a fresh encoder of that shape
    config: str | None = None  # a LoclipConfig JSON file or directory
    from_clip: str | None = None  # a transformers CLIPModel/SiglipModel directory (continued training)
    init_from: str | None = None  # a loclip directory (save_pretrained output)
    tokenizer: str | None = None  # tokenizer directory; default: from_clip/init_from path
    gradient_checkpointing: bool = False
    grounding_head: str = "dense"  # dense | pooled (CLOC's); for new encoders (preset, from_clip)
    # Shape of preset=tiny (both towers): width, depth, heads, patch size, embedding size.
    width: int = 64
    layers: int = 2
    heads: int = 4
    patch_size: int = 8
    projection_dim: int = 32


@dataclass
class LossRecipe:
    """Which terms train the encoder, and their weights."""

    contrastive: str = "infonce"  # infonce | siglip
    local_loss: bool = True  # each rank scores its own rows against the gathered batch
    subcaptions: bool = True  # DreamLIP multi-positive loss over K sub-captions
    subcaption_weight: float = 1.0
    grouping_weight: float = 0.0  # DreamLIP sub-caption grouping loss (0 = off)
    grouping_delta: float = 0.5
    grouping_negatives: str = "image"  # image (paper) | batch
    regions: bool = True  # CLOC region-text loss
    region_method: str = "prompter"  # prompter (CLOC) | roialign (baseline)
    region_lambda: float = 1.0  # region terms x lambda x share of images with regions
    text_filter: float = 0.9  # region negatives with caption similarity above this leave the denominator
    text_filter_by: str = "embedding"  # embedding (paper: text-tower similarity) | exact (identical captions only)
    grounding: bool = True  # CLOC box head on phrase prompts (prompter only)
    grounding_kind: str = "l2"  # l2 (paper) | l1_giou
    grounding_weight: float = 1.0

    def validate(self) -> None:
        _one_of("loss.contrastive", self.contrastive, ("infonce", "siglip"))
        _one_of("loss.grouping_negatives", self.grouping_negatives, ("image", "batch"))
        _one_of("loss.region_method", self.region_method, ("prompter", "roialign"))
        _one_of("loss.grounding_kind", self.grounding_kind, ("l2", "l1_giou"))
        _one_of("loss.text_filter_by", self.text_filter_by, ("embedding", "exact"))
        if not 0.0 <= self.grouping_delta <= 1.0:
            raise ValueError(f"loss.grouping_delta must be in [0, 1], got {self.grouping_delta}")
        if self.grounding and self.region_method != "prompter":
            raise ValueError("loss.grounding needs loss.region_method=prompter (the box head reads prompter output)")


@dataclass
class EvalRecipe:
    """Held-out evaluation run by the periodic hook and at the end."""

    synth_dir: str | None = None  # a synthetic-world directory with val/ (and novel/) splits
    max_scenes: int = 200
    batch_size: int = 64


@dataclass
class PretrainRecipe:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelRecipe = field(default_factory=ModelRecipe)
    loss: LossRecipe = field(default_factory=LossRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    run: RunRecipe = field(default_factory=RunRecipe)
    eval: EvalRecipe = field(default_factory=EvalRecipe)

    def validate(self) -> None:
        self.loss.validate()
        _one_of("model.preset", self.model.preset, PRESETS)
        _one_of("model.grounding_head", self.model.grounding_head, GROUNDING_HEADS)
        _one_of("run.precision", self.run.precision, ("fp32", "bf16"))
        for name in ("steps", "grad_accum"):
            if getattr(self.optim, name) < 1:
                raise ValueError(f"optim.{name} must be >= 1, got {getattr(self.optim, name)}")
        if self.optim.warmup_steps < 0 or self.optim.lr <= 0:
            raise ValueError(f"optim.lr must be > 0 and optim.warmup_steps >= 0, got {self.optim.lr}, "
                             f"{self.optim.warmup_steps}")


def apply_variant(recipe: PretrainRecipe, variant: str) -> PretrainRecipe:
    """The learning-proof variants: which loss terms are on (same data, steps and seed otherwise)."""
    _one_of("variant", variant, VARIANTS)
    loss = recipe.loss
    loss.subcaptions = variant != "clip"
    loss.regions = variant in ("cloc", "cloc_roialign")
    loss.region_method = "roialign" if variant == "cloc_roialign" else "prompter"
    loss.grounding = variant == "cloc"
    return recipe


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
