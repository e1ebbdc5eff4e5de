"""Which weights train: stage 1/2 freezing, LoRA and QLoRA through peft, merging back for export.

peft and bitsandbytes are imported only here, only when LoRA/QLoRA is asked for.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from loclip.mllm.modeling import LoclipLlavaForConditionalGeneration

PROJECTORS = ("multi_modal_projector", "region_projector", "ground_projector")
LLM_PARTS = ("language_model", "lm_head")
GROUND_HEAD = ("box_head",)  # of the vision tower: the dense box head (cell scores and boxes); not the prompter


def _part(name: str) -> str:
    """The top-level part a parameter belongs to: ``vision_tower``, a projector, ``language_model``, ``lm_head``."""
    for part in ("vision_tower", *PROJECTORS, *LLM_PARTS):
        if f"{part}." in name or name.startswith(part):
            return part
    return name.split(".")[0]


def set_trainable(
    model: nn.Module, stage: int, tune_encoder: bool, tune_llm: bool | None = None, tune_ground_head: bool = False
) -> list[str]:
    """Freeze all, then unfreeze the projectors (always), the LLM (stage 2 without LoRA), the encoder
    (``tune_encoder``), or only the encoder's box head (``tune_ground_head``: the cell scores and boxes that
    draw ``<ground>`` answers; the trunk and the prompter, which also makes the ``<region>`` embeddings, stay
    frozen). Works on a peft model too (LoRA weights and trainable token rows are left as peft set them).
    Returns the trained parts the model has."""
    tune_llm = stage == 2 if tune_llm is None else tune_llm
    parts = set(PROJECTORS) | (set(LLM_PARTS) if tune_llm else set()) | ({"vision_tower"} if tune_encoder else set())
    present = set()
    for name, p in model.named_parameters():
        if "lora_" in name or "trainable_tokens_" in name:  # adapter weights stay as peft set them
            continue
        part = _part(name)
        head = tune_ground_head and any(f"vision_tower.{m}." in name for m in GROUND_HEAD)
        p.requires_grad_((part in parts or head) and p.is_floating_point())
        present.add(part)
    trained = parts & present
    if tune_ground_head and not tune_encoder:
        trained |= {f"vision_tower.{m}" for m in GROUND_HEAD}
    return sorted(trained)


def lora_targets(model: LoclipLlavaForConditionalGeneration) -> list[str]:
    """Names of every linear layer of the LLM body (4-bit ones included): LoRA goes there only."""
    return [n for n, m in model.named_modules() if ".language_model." in f".{n}" and isinstance(m, nn.Linear)]


def loclip_token_ids(model: LoclipLlavaForConditionalGeneration) -> list[int]:
    """The ids of ``<image>``, ``<region>`` and (with ``<ground>`` answers) ``<ground>`` in ``model``'s vocabulary."""
    config = model.config
    ids = [config.image_token_index, config.region_token_index, getattr(config, "ground_token_index", None)]
    return [i for i in ids if i is not None]


def apply_lora(
    model: LoclipLlavaForConditionalGeneration,
    r: int,
    alpha: int,
    dropout: float,
    quantized: bool = False,
    trainable_tokens: list[int] | None = None,
):
    """Wrap ``model`` in a peft ``PeftModel`` with LoRA on the LLM's linear layers.

    ``trainable_tokens``: embedding rows that train in full beside LoRA (peft's trainable tokens; with tied
    embeddings the output row follows). loclip's own tokens are new to a pretrained LLM: LoRA alone never
    changes their rows, so ``<ground>`` could never become likely enough to be emitted.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    tokens = None
    if trainable_tokens:
        ids = sorted(set(trainable_tokens))
        tokens = {"embed_tokens": ids}
        output = model.get_output_embeddings()
        if output is not None and output.weight is not model.get_input_embeddings().weight:
            tokens["lm_head"] = ids  # untied: the rows that score the token must train too
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_targets(model),
        bias="none",
        trainable_token_indices=tokens,
    )
    return get_peft_model(model, config)


def load_quantized(directory: str | Path) -> LoclipLlavaForConditionalGeneration:
    """Load a saved model with its LLM in 4-bit NF4 (bitsandbytes); encoder, projectors and head stay float."""
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.float32,
        # matched from the start of the module name: full paths
        llm_int8_skip_modules=[f"model.{part}" for part in ("vision_tower", *PROJECTORS)] + ["lm_head"],
    )
    return LoclipLlavaForConditionalGeneration.from_pretrained(directory, quantization_config=quant)


def merged(model: nn.Module) -> nn.Module:
    """A peft model with its LoRA weights merged in (the plain model, every trained weight kept); others as is."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def merged_float(model: nn.Module, base: str | Path) -> nn.Module:
    """A QLoRA model merged into its float base: the full-precision model saved at ``base`` before quantizing,
    with every trained weight of ``model`` (LoRA, trainable token rows, projectors, heads) carried over, then
    merged in float.

    Why: merging LoRA into 4-bit layers re-quantizes them, and the merged 4-bit model does not survive
    ``save_pretrained`` → ``from_pretrained`` (bitsandbytes' re-quantized statistics come back different; on
    SmolLM2 the reloaded model answered gibberish). A float export reloads exactly; quantize it again to serve.
    """
    from peft import get_peft_model

    if not hasattr(model, "peft_config"):
        raise ValueError("merged_float needs the peft (QLoRA) model, not a merged one")
    float_model = LoclipLlavaForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    config = model.peft_config["default"]
    target = get_peft_model(float_model, config)
    mine = target.state_dict()
    # Same names and shapes: everything trained (and the frozen float parts); the 4-bit LLM weights differ in
    # dtype/shape and are skipped, their float originals in ``base`` are what QLoRA froze.
    carried = {
        k: v
        for k, v in model.state_dict().items()
        if k in mine and v.shape == mine[k].shape and v.dtype == mine[k].dtype
    }
    target.load_state_dict(carried, strict=False)
    return target.merge_and_unload()
