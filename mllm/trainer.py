"""The finetuning loop on the DeepSpeed engine (ZeRO 0-3, gloo on CPU), with exact resume and export.

``train(recipe)`` builds (or loads) the model, chooses what trains (stage 1/2, encoder, LoRA/QLoRA), trains
``optim.steps`` optimizer steps on LLaVA conversations, checkpoints atomically (``loclip.training.checkpoint``:
the whole module, so projectors and region modules survive a resume alongside LoRA weights), evaluates, and
exports with ``save_pretrained`` after merging LoRA into the weights.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from loclip.encoder import LoclipVisionModel
from loclip.encoder.compat import enable_activation_checkpointing
from loclip.training import checkpoint as ckpt
from loclip.training.engine import build_engine
from loclip.training.distributed import setup_distributed, teardown_distributed
from loclip.training.metrics_log import MetricLog
from loclip.training.recipe import dump_recipe
from loclip.training.seeding import seed_everything

from . import adapters
from .builder import compose, make_processor, tiny_llm
from .config import FinetuneRecipe
from .conversation import ensure_tokens
from .data import BatchStream, ConversationDataset
from .modeling import LoclipLlavaForConditionalGeneration
from .processing import LoclipLlavaProcessor

log = logging.getLogger("loclip.mllm")

EvalFn = Callable[[torch.nn.Module, LoclipLlavaProcessor], dict[str, float]]


def build(recipe: FinetuneRecipe) -> tuple[LoclipLlavaForConditionalGeneration, LoclipLlavaProcessor]:
    """The full-precision model and its processor, from ``model.init_from`` or encoder + LLM."""
    m = recipe.model
    if m.init_from:
        model = LoclipLlavaForConditionalGeneration.from_pretrained(m.init_from, dtype=torch.float32)
        processor = LoclipLlavaProcessor.from_pretrained(m.init_from)
        processor.template = recipe.data.template
        return model, processor
    source = m.tokenizer or m.llm
    if source is None:
        raise ValueError("model.tokenizer is required when the LLM is built from scratch (model.llm unset)")
    tokenizer = AutoTokenizer.from_pretrained(source)
    ensure_tokens(tokenizer, recipe.data.template, ground=m.box_answers == "ground")
    if m.llm:
        llm = AutoModelForCausalLM.from_pretrained(m.llm, dtype=torch.float32)
        if llm.get_input_embeddings().num_embeddings < len(tokenizer):
            llm.resize_token_embeddings(len(tokenizer))
    else:
        llm = tiny_llm(tokenizer, m.tiny_hidden_size, m.tiny_layers, m.tiny_heads, m.tiny_max_positions)
    if not Path(m.encoder).is_dir():
        raise ValueError(f"model.encoder: no encoder directory at {m.encoder!r}")
    encoder = LoclipVisionModel.from_pretrained(m.encoder, dtype=torch.float32)
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
        model = adapters.apply_lora(model, t.lora_r, t.lora_alpha, t.lora_dropout, quantized=t.qlora)
        adapters.set_trainable(model, t.stage, t.tune_encoder, tune_llm=False, tune_ground_head=t.tune_ground_head)
    else:
        adapters.set_trainable(model, t.stage, t.tune_encoder, tune_ground_head=t.tune_ground_head)
    return model


def train(recipe: FinetuneRecipe, eval_fn: EvalFn | None = None) -> Path:
    """Run finetuning; returns the output directory holding the exported model and processor."""
    rank, world, device = setup_distributed()
    out = Path(recipe.run.output_dir)
    ckpt_root = out / "checkpoints"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, out / "recipe.yaml")
    seed_everything(recipe.run.seed)  # same seed on every rank: identical fresh projectors and LLM
    model, processor = build(recipe)
    if dist.is_initialized():
        dist.barrier()  # QLoRA: rank 0 may be writing the base model the others read
    model = prepare_training(model, recipe, out)
    seed_everything(recipe.run.seed + rank)

    if not recipe.data.train_json:
        raise ValueError("data.train_json is required (a LLaVA conversation JSON)")
    dataset = ConversationDataset(recipe.data.train_json, processor, recipe.data.image_root, recipe.data.max_length,
                                  box_answers=model.config.box_answers)
    if rank == 0 and dataset.skip_counts:
        log.warning("skipped records by reason: %s", dict(dataset.skip_counts))
    stream = BatchStream(dataset, recipe.data.batch_size, recipe.run.seed, rank, world)

    o = recipe.optim
    # a pretrained encoder adapts at a fraction of the LR that trains fresh projectors (and a from-scratch LLM)
    scales = {"vision_tower.": recipe.tune.encoder_lr_scale}
    engine, scheduler = build_engine(model, recipe.run, recipe.optim, recipe.data.batch_size, lr_scales=scales)
    metrics = MetricLog(out, enabled=rank == 0)

    step = ckpt.resume_run(engine, ckpt_root, recipe.run.resume, stream, "stream", metrics, log)

    def save() -> None:
        ckpt.save_checkpoint(engine, ckpt_root, step, {"stream": stream.state_dict()}, recipe.run.keep_checkpoints)

    def evaluate() -> None:
        if eval_fn is None:
            return
        engine.eval()
        results = eval_fn(engine.module, processor) if rank == 0 else {}
        engine.train()
        metrics.log(step, results, prefix="eval")
        if rank == 0:
            log.info("step %d eval: %s", step, {k: round(v, 4) for k, v in results.items()})

    engine.train()
    bar = tqdm(total=o.steps, initial=step, disable=rank != 0 or not recipe.run.progress, desc="finetune")
    batches, micro, t0, tokens = iter(stream), 0, time.perf_counter(), 0
    while step < o.steps:
        batch = {k: v.to(device) for k, v in next(batches).items()}
        output = engine(**batch)
        loss = output.loss
        engine.backward(loss)
        engine.step()
        micro += 1
        tokens += int(batch["attention_mask"].sum()) * world
        if micro % o.grad_accum:
            continue
        step += 1
        bar.update(1)
        if step % recipe.run.log_every == 0 or step == o.steps:
            parts = {"loss": loss, **{k: getattr(output, k, None) for k in ("lm_loss", "ground_loss")}}
            values = {k: mean_over_ranks(v, world) for k, v in parts.items() if v is not None}
            metrics.log(step, {**values, "lr": scheduler.get_last_lr()[0],
                               "tokens_per_s": tokens / (time.perf_counter() - t0)})
            bar.set_postfix(loss=f"{values['loss']:.3f}")
            t0, tokens = time.perf_counter(), 0
        if recipe.run.eval_every and step % recipe.run.eval_every == 0 and step < o.steps:
            evaluate()
        if recipe.run.save_every and step % recipe.run.save_every == 0 and step < o.steps:
            save()
    bar.close()
    save()
    evaluate()
    export(engine, processor, out, zero_stage=engine.zero_optimization_stage())
    if rank == 0:
        (out / "skipped_records.json").write_text(json.dumps(dict(dataset.skip_counts), indent=2))
    if dist.is_initialized():
        dist.barrier()
    metrics.close()
    teardown_distributed()
    return out


def mean_over_ranks(value: torch.Tensor, world: int) -> float:
    """A scalar loss averaged over the ranks (every rank must call it)."""
    value = value.detach().reshape(()).clone()
    if dist.is_initialized() and world > 1:
        dist.all_reduce(value)
        value /= world
    return float(value)


def export(engine, processor: LoclipLlavaProcessor, out: Path, zero_stage: int = 0) -> None:
    """Merge LoRA (if any) and write config + safetensors + processor into ``out`` (via a temporary folder).

    Every rank must call it: under ZeRO-3 the partitioned weights are gathered first.
    """
    import deepspeed

    module = engine.module
    rank = dist.get_rank() if dist.is_initialized() else 0
    params = list(module.parameters()) if zero_stage == 3 else []
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=zero_stage == 3):
        if rank != 0:
            return
        model = adapters.merged(module)
        tmp = out / ".export-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for f in tmp.iterdir():
            f.replace(out / f.name)
        tmp.rmdir()
