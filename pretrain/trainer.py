"""The pretraining loop on the DeepSpeed engine, with exact resume.

``train(recipe)`` builds tokenizer, processor, encoder, objective and data loader, wraps them in
DeepSpeed (ZeRO stage and precision from the recipe's JSON), resumes from the newest complete
checkpoint if there is one, trains for ``optim.steps`` optimizer steps, logs every term, evaluates
periodically, checkpoints atomically, and exports the encoder with ``save_pretrained``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from loclip.encoder import LoclipConfig, LoclipModel, tiny_config, vit_b16_config
from loclip.encoder.compat import enable_activation_checkpointing
from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor

from loclip.training import checkpoint as ckpt
from .config import PretrainRecipe
from .data import build_train_loader
from loclip.training.engine import build_engine
from loclip.training.distributed import setup_distributed, teardown_distributed
from loclip.training.metrics_log import MetricLog
from .objective import PretrainObjective
from loclip.training.recipe import dump_recipe
from loclip.training.seeding import seed_everything

log = logging.getLogger("loclip.pretrain")

EvalFn = Callable[[LoclipModel, LoclipProcessor], dict[str, float]]


def load_tokenizer(recipe: PretrainRecipe):
    source = recipe.model.tokenizer or recipe.model.init_from or recipe.model.from_clip
    if source is None:
        raise ValueError("model.tokenizer is required when the encoder is built from a preset or config")
    return AutoTokenizer.from_pretrained(source)


def build_model(recipe: PretrainRecipe, tokenizer) -> LoclipModel:
    m = recipe.model
    if m.init_from:
        model = LoclipModel.from_pretrained(m.init_from, dtype=torch.float32)
    elif m.from_clip:
        model = LoclipModel.from_clip(m.from_clip, grounding_head=m.grounding_head)
    elif m.config:
        model = LoclipModel(LoclipConfig.from_pretrained(m.config))
    else:
        ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id)
        if m.preset == "tiny":
            config = tiny_config(vocab_size=len(tokenizer), image_size=recipe.data.image_size,
                                 max_text_length=recipe.data.max_text_length, width=m.width, layers=m.layers,
                                 heads=m.heads, patch_size=m.patch_size, projection_dim=m.projection_dim, **ids)
        else:
            config = vit_b16_config(vocab_size=len(tokenizer), max_text_length=recipe.data.max_text_length)
        config.vision_config.grounding_head = m.grounding_head
        model = LoclipModel(config)
    if model.config.vision_config.image_size != recipe.data.image_size:
        raise ValueError(
            f"data.image_size={recipe.data.image_size} but the encoder takes "
            f"{model.config.vision_config.image_size} px images"
        )
    if m.gradient_checkpointing:
        enable_activation_checkpointing(model)
    return model


def _mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, float]:
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(stacked)
        stacked /= dist.get_world_size()
    return dict(zip(keys, stacked.tolist()))


def _sum_over_ranks(counts: dict[str, int]) -> dict[str, int]:
    """Skip counts of all ranks added up (each rank reads its own shards)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return dict(counts)
    gathered: list[dict[str, int]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, dict(counts))
    total: dict[str, int] = {}
    for part in gathered:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def train(recipe: PretrainRecipe, eval_fn: EvalFn | None = None) -> Path:
    """Run pretraining; returns the output directory holding the exported encoder."""
    rank, world, device = setup_distributed()
    out = Path(recipe.run.output_dir)
    ckpt_root = out / "checkpoints"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        dump_recipe(recipe, out / "recipe.yaml")
    seed_everything(recipe.run.seed + rank)

    tokenizer = load_tokenizer(recipe)
    model = build_model(recipe, tokenizer)
    processor = LoclipProcessor(LoclipImageProcessor(image_size=recipe.data.image_size), tokenizer)
    objective = PretrainObjective(model, recipe.loss)
    o = recipe.optim
    engine, scheduler = build_engine(objective, recipe.run, recipe.optim, recipe.data.batch_size)
    loader = build_train_loader(recipe.data, processor, rank=rank, world_size=world)
    metrics = MetricLog(out, enabled=rank == 0)

    step = ckpt.resume_run(engine, ckpt_root, recipe.run.resume, loader, "loader", metrics, log)

    def save() -> None:
        ckpt.save_checkpoint(engine, ckpt_root, step, {"loader": loader.state_dict()}, recipe.run.keep_checkpoints)

    def evaluate() -> None:
        if eval_fn is None:
            return
        engine.eval()
        with torch.no_grad(), _gathered(engine, model):  # every rank joins the ZeRO-3 gather; rank 0 scores
            results = eval_fn(model, processor) if rank == 0 else {}
        engine.train()
        metrics.log(step, results, prefix="eval")
        if rank == 0:
            log.info("step %d eval: %s", step, {k: round(v, 4) for k, v in results.items()})

    engine.train()
    bar = tqdm(total=o.steps, initial=step, disable=rank != 0 or not recipe.run.progress, desc="pretrain")
    t0, seen = time.perf_counter(), 0
    micro = 0
    batches = iter(loader)
    while step < o.steps:  # check before fetching: a fetched batch counts as consumed in the loader state
        batch = _to_device(next(batches), device)
        loss, terms = engine(batch)
        engine.backward(loss)
        engine.step()
        micro += 1
        seen += batch["pixel_values"].shape[0] * world
        if micro % o.grad_accum:
            continue
        step += 1
        bar.update(1)
        if step % recipe.run.log_every == 0 or step == o.steps:
            scalars = _mean_over_ranks({"loss": loss, **terms})
            scalars["lr"] = scheduler.get_last_lr()[0]
            scalars["logit_scale"] = float(model.logit_scale.detach().exp())
            scalars["images_per_s"] = seen / (time.perf_counter() - t0)
            metrics.log(step, scalars)
            bar.set_postfix(loss=f"{scalars['loss']:.3f}")
            t0, seen = time.perf_counter(), 0
        if recipe.run.eval_every and step % recipe.run.eval_every == 0 and step < o.steps:
            evaluate()
        if recipe.run.save_every and step % recipe.run.save_every == 0 and step < o.steps:
            save()
    bar.close()

    save()
    loader.close()
    evaluate()
    skips = _sum_over_ranks(loader.skip_counts())
    if rank == 0:
        if skips:
            log.warning("skipped samples by reason: %s", skips)
        (out / "skipped_samples.json").write_text(json.dumps(skips, indent=2))
    with _gathered(engine, model):
        if rank == 0:
            export(model, processor, out)
    if dist.is_initialized():
        dist.barrier()
    metrics.close()
    teardown_distributed()
    return out


def _gathered(engine, model: LoclipModel):
    """Full weights on every rank for the duration (ZeRO-3 partitions them; other stages: a no-op)."""
    import deepspeed

    return deepspeed.zero.GatheredParameters(
        list(model.parameters()), modifier_rank=None, enabled=engine.zero_optimization_stage() == 3
    )


def export(model: LoclipModel, processor: LoclipProcessor, out: Path) -> None:
    """Write config + safetensors (+ processor) into ``out`` itself, via a temporary folder and rename."""
    import shutil

    tmp = out / ".export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()
