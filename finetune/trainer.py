"""Finetuning the MLLM: the model, what trains and the conversations, handed to the shared training loop.

``train(recipe)`` builds (or loads) the model, chooses what trains (stage 1/2, encoder, LoRA/QLoRA), and runs
``loclip.training.loop.train_loop`` on LLaVA conversations (DeepSpeed ZeRO 0-3, gloo on CPU; checkpoints hold
the whole module, so projectors and region modules survive a resume alongside LoRA weights); the export
merges LoRA into the weights and writes them with ``save_pretrained``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from loclip.core.json_input import InputRefused
from loclip.core.model_dir import load_model_dir, load_processor_dir
from loclip.encoder import LoclipVisionModel
from loclip.encoder.compat import enable_activation_checkpointing
from loclip.mllm.conversation import ensure_tokens
from loclip.mllm.modeling import LoclipLlavaForConditionalGeneration
from loclip.mllm.processing import LoclipLlavaProcessor
from loclip.mllm.records import load_records
from loclip.training.distributed import teardown_distributed
from loclip.training.engine import build_engine
from loclip.training.export import export_atomic
from loclip.training.loop import StepOutput, open_run, train_loop
from loclip.training.seeding import seed_everything

from . import adapters
from .builder import add_token_rows, check_tokenizer_fits, compose, make_processor, tiny_llm
from .config import FinetuneRecipe
from .data import BatchStream, ConversationDataset

log = logging.getLogger("loclip.finetune")
MLLM_TYPE = {"loclip_llava": "a loclip MLLM, e.g. a loclip-finetune export"}

EvalFn = Callable[[torch.nn.Module, LoclipLlavaProcessor], dict[str, float]]


def build(recipe: FinetuneRecipe) -> tuple[LoclipLlavaForConditionalGeneration, LoclipLlavaProcessor]:
    """The full-precision model and its processor, from ``model.init_from`` or encoder + LLM."""
    m = recipe.model
    if m.init_from:  # a directory the user names: checked (type, safetensors, every weight present) first
        model = load_model_dir(
            m.init_from, LoclipLlavaForConditionalGeneration, MLLM_TYPE, "model.init_from", dtype=torch.float32
        )
        processor = load_processor_dir(m.init_from, "model.init_from", LoclipLlavaProcessor)
        processor.template = recipe.data.template
        return model, processor
    source = m.tokenizer or m.llm
    if source is None:
        raise ValueError("model.tokenizer is required when the LLM is built from scratch (model.llm unset)")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    if m.llm:  # before loclip's tokens are added: the tokenizer as it came must be the LLM's
        check_tokenizer_fits(tokenizer, AutoConfig.from_pretrained(m.llm, trust_remote_code=False), source, m.llm)
    added = ensure_tokens(tokenizer, recipe.data.template, ground=m.box_answers == "ground")
    if m.llm:
        llm = AutoModelForCausalLM.from_pretrained(m.llm, dtype=torch.float32, trust_remote_code=False)
        # loclip's tokens (the last ones added) start as the mean pretrained row
        add_token_rows(llm, list(range(len(tokenizer) - added, len(tokenizer))))
    else:
        llm = tiny_llm(tokenizer, m.tiny_hidden_size, m.tiny_layers, m.tiny_heads, m.tiny_max_positions)
    if not Path(m.encoder).is_dir():
        raise ValueError(f"model.encoder: no encoder directory at {m.encoder!r}")
    encoder = LoclipVisionModel.from_pretrained(m.encoder, dtype=torch.float32, trust_remote_code=False)
    model = compose(encoder, llm, tokenizer, m.vision_feature_layer, m.box_answers, m.ground_loss_weight)
    return model, make_processor(model.config, tokenizer, recipe.data.template)


def prepare_training(model: LoclipLlavaForConditionalGeneration, recipe: FinetuneRecipe, out: Path) -> torch.nn.Module:
    """Quantize (QLoRA), add LoRA, and set ``requires_grad`` for what this stage trains."""
    t = recipe.tune
    if t.qlora:
        base = out / "base"  # the composed float model, reloaded with a 4-bit LLM
        if not (base / "config.json").is_file():
            model.save_pretrained(base)
        model = adapters.load_quantized(base)
    if t.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if t.lora or t.qlora:
        model = adapters.apply_lora(
            model,
            t.lora_r,
            t.lora_alpha,
            t.lora_dropout,
            quantized=t.qlora,
            trainable_tokens=adapters.loclip_token_ids(model),
        )
        adapters.set_trainable(model, t.stage, t.tune_encoder, tune_llm=False, tune_ground_head=t.tune_ground_head)
    else:
        adapters.set_trainable(model, t.stage, t.tune_encoder, tune_ground_head=t.tune_ground_head)
    return model


def train(recipe: FinetuneRecipe, eval_fn: EvalFn | None = None) -> Path:
    """Run finetuning; returns the output directory holding the exported model and processor."""
    if not recipe.data.train_json:
        raise InputRefused("data.train_json is required (a LLaVA conversation JSON)")
    records = load_records(recipe.data.train_json, "data.train_json")  # a file that cannot be read: before the run
    ctx = open_run(recipe, recipe.run)
    seed_everything(recipe.run.seed)  # same seed on every rank: identical fresh projectors and LLM
    model, processor = build(recipe)
    if dist.is_initialized():
        dist.barrier()  # QLoRA: rank 0 may be writing the base model the others read
    model = prepare_training(model, recipe, ctx.out)
    seed_everything(recipe.run.seed + ctx.rank)

    image_root = recipe.data.image_root or Path(recipe.data.train_json).parent
    dataset = ConversationDataset(
        records, processor, image_root, recipe.data.max_length, box_answers=model.config.box_answers
    )
    if ctx.rank == 0 and dataset.skip_counts:
        log.warning("skipped records by reason: %s", dict(dataset.skip_counts))
    stream = BatchStream(dataset, recipe.data.batch_size, recipe.run.seed, ctx.rank, ctx.world)

    # a pretrained encoder adapts at a fraction of the LR that trains fresh projectors (and a from-scratch LLM)
    scales = {"vision_tower.": recipe.tune.encoder_lr_scale}
    engine, scheduler = build_engine(model, recipe.run, recipe.optim, recipe.data.batch_size, lr_scales=scales)

    def step(batch: dict[str, torch.Tensor]) -> StepOutput:
        output = engine(**batch)
        terms = {k: v for k in ("lm_loss", "ground_loss") if (v := getattr(output, k, None)) is not None}
        return StepOutput(output.loss, terms, count=int(batch["attention_mask"].sum()))

    def export() -> None:
        module = engine.module
        plain = adapters.merged_float(module, ctx.out / "base") if recipe.tune.qlora else adapters.merged(module)
        export_atomic(ctx.out, plain, processor)

    train_loop(
        engine,
        scheduler,
        stream,
        step,
        ctx=ctx,
        optim=recipe.optim,
        data_key="stream",
        evaluate=None if eval_fn is None else lambda: eval_fn(engine.module, processor),
        export=export,
        rate="tokens_per_s",
        desc="finetune",
        log=log,
    )
    if ctx.rank == 0:
        (ctx.out / "skipped_records.json").write_text(json.dumps(dict(dataset.skip_counts), indent=2))
    teardown_distributed()
    return ctx.out
