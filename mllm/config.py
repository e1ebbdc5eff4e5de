"""The finetuning recipe: what ``loclip-finetune`` reads from YAML and ``--a.b`` flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from loclip.training.config import OptimRecipe, RunRecipe

from .configuration import BOX_ANSWERS

TEMPLATES = ("auto", "plain", "chat")


@dataclass
class ModelRecipe:
    """Where the parts come from. ``init_from`` (a saved LoclipLlava directory, e.g. the stage-1 export) wins,
    its own ``box_answers`` included; else ``encoder`` + ``llm`` (a transformers causal-LM directory, or ``None``
    for a tiny Llama from scratch)."""

    encoder: str = "runs/quickstart"  # a loclip encoder directory (LoclipModel or LoclipVisionModel save)
    llm: str | None = None
    tokenizer: str | None = None  # default: the llm directory (required for a tiny LLM)
    init_from: str | None = None
    vision_feature_layer: int = -2
    box_answers: str = "text"  # text: the LLM writes box text | ground: a <ground> token the encoder's head draws
    ground_loss_weight: float = 1.0
    tiny_hidden_size: int = 128
    tiny_layers: int = 2
    tiny_heads: int = 4
    tiny_max_positions: int = 1024


@dataclass
class TuneRecipe:
    """What trains. Stage 1: the image and region projectors. Stage 2: + the LLM (full, or LoRA/QLoRA)."""

    stage: int = 1
    tune_encoder: bool = False
    tune_ground_head: bool = False  # the encoder's box head only (not the trunk or the prompter)
    encoder_lr_scale: float = 0.1  # LR factor for trained encoder weights (tune_encoder / tune_ground_head)
    lora: bool = False
    qlora: bool = False  # 4-bit LLM (bitsandbytes) + LoRA; implies lora
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"tune.stage must be 1 or 2, got {self.stage}")
        if (self.lora or self.qlora) and self.stage != 2:
            raise ValueError("tune.lora/tune.qlora adapt the LLM: they need tune.stage=2")
        if not self.encoder_lr_scale > 0:
            raise ValueError(f"tune.encoder_lr_scale must be > 0, got {self.encoder_lr_scale}")
        if self.lora_r < 1:
            raise ValueError(f"tune.lora_r must be >= 1, got {self.lora_r}")


@dataclass
class DataRecipe:
    train_json: str | None = None  # LLaVA JSON/JSONL with image, conversations, boxes
    image_root: str | None = None  # default: the JSON's folder
    template: str = "auto"  # auto | plain | chat (see loclip.mllm.conversation)
    max_length: int = 1024  # longer conversations are skipped, never cut
    batch_size: int = 8


@dataclass
class FinetuneRunRecipe(RunRecipe):
    output_dir: str = "runs/mllm"


@dataclass
class EvalRecipe:
    val_json: str | None = None  # held-out LLaVA JSON scored for referring and grounding (REC@0.5)
    max_questions: int = 200
    max_new_tokens: int = 24


@dataclass
class FinetuneRecipe:
    model: ModelRecipe = field(default_factory=ModelRecipe)
    tune: TuneRecipe = field(default_factory=TuneRecipe)
    data: DataRecipe = field(default_factory=DataRecipe)
    optim: OptimRecipe = field(default_factory=OptimRecipe)
    run: FinetuneRunRecipe = field(default_factory=FinetuneRunRecipe)
    eval: EvalRecipe = field(default_factory=EvalRecipe)

    def validate(self) -> None:
        self.tune.validate()
        if self.model.box_answers not in BOX_ANSWERS:
            raise ValueError(f"model.box_answers must be one of {list(BOX_ANSWERS)}, got {self.model.box_answers!r}")
        if self.data.template not in TEMPLATES:
            raise ValueError(f"data.template must be one of {list(TEMPLATES)}, got {self.data.template!r}")
        if self.run.precision not in ("fp32", "bf16"):
            raise ValueError(f"run.precision must be fp32 or bf16, got {self.run.precision!r}")
        for name in ("steps", "grad_accum"):
            if getattr(self.optim, name) < 1:
                raise ValueError(f"optim.{name} must be >= 1, got {getattr(self.optim, name)}")
