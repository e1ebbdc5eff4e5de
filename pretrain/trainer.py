"""Pretraining: the encoder, its objective and the data, handed to the shared training loop.

``train(recipe)`` builds tokenizer, processor, encoder, objective and data loader, wraps them in
DeepSpeed (ZeRO stage and precision from the recipe's JSON) and runs ``loclip.training.loop.train_loop``
(resume, steps, logging, evaluation, checkpoints, export of the encoder with ``save_pretrained``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoTokenizer

from loclip.core.model_dir import load_model_dir
from loclip.encoder import LoclipConfig, LoclipModel, tiny_config, vit_b16_config
from loclip.encoder.compat import enable_activation_checkpointing
from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.encoder.processing import LoclipProcessor
from loclip.training.distributed import sum_over_ranks, teardown_distributed
from loclip.training.engine import build_engine
from loclip.training.export import export_atomic
from loclip.training.loop import StepOutput, open_run, train_loop
from loclip.training.seeding import seed_everything

from .config import PretrainRecipe
from .data import build_train_loader
from .objective import PretrainObjective

log = logging.getLogger("loclip.pretrain")
ENCODER_TYPE = {"loclip": "a loclip encoder, e.g. a loclip-pretrain export"}

EvalFn = Callable[[LoclipModel, LoclipProcessor], dict[str, float]]  # held-out figures of an encoder


def load_tokenizer(recipe: PretrainRecipe):
    return AutoTokenizer.from_pretrained(recipe.model.tokenizer_source(), trust_remote_code=False)


def build_model(recipe: PretrainRecipe, tokenizer) -> LoclipModel:
    m = recipe.model
    if m.init_from:  # a directory the user names: checked (type, safetensors, every weight present) first
        model = load_model_dir(m.init_from, LoclipModel, ENCODER_TYPE, "model.init_from", dtype=torch.float32)
    elif m.from_clip:
        model = LoclipModel.from_clip(m.from_clip, grounding_head=m.grounding_head)
    elif m.config:
        model = LoclipModel(LoclipConfig.from_pretrained(m.config))
    else:
        ids = dict(
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        if m.preset == "tiny":  # the recipe's validate filled and checked the shape
            config = tiny_config(
                vocab_size=len(tokenizer),
                image_size=recipe.data.image_size,
                max_text_length=recipe.data.max_text_length,
                width=m.width,
                layers=m.layers,
                heads=m.heads,
                patch_size=m.patch_size,
                projection_dim=m.projection_dim,
                **ids,
            )
        else:
            config = vit_b16_config(vocab_size=len(tokenizer), max_text_length=recipe.data.max_text_length, **ids)
        config.vision_config.grounding_head = m.grounding_head
        config.vision_config.prompter_num_heads = m.prompter_heads
        model = LoclipModel(config)
    if model.config.vision_config.image_size != recipe.data.image_size:
        raise ValueError(
            f"data.image_size={recipe.data.image_size} but the encoder takes "
            f"{model.config.vision_config.image_size} px images"
        )
    if m.gradient_checkpointing:
        enable_activation_checkpointing(model)
    return model


def train(recipe: PretrainRecipe, eval_fn: EvalFn | None = None) -> Path:
    """Run pretraining; returns the output directory holding the exported encoder."""
    ctx = open_run(recipe, recipe.run, loader_workers=recipe.data.num_workers)
    seed_everything(recipe.run.seed + ctx.rank)
    tokenizer = load_tokenizer(recipe)
    model = build_model(recipe, tokenizer)
    processor = LoclipProcessor(LoclipImageProcessor(image_size=recipe.data.image_size), tokenizer)
    objective = PretrainObjective(model, recipe.loss)
    engine, scheduler = build_engine(objective, recipe.run, recipe.optim, recipe.data.batch_size)
    loader = build_train_loader(recipe.data, processor, rank=ctx.rank, world_size=ctx.world)

    def step(batch: dict[str, torch.Tensor]) -> StepOutput:
        loss, terms = engine(batch)
        return StepOutput(loss, terms, count=batch["pixel_values"].shape[0])

    train_loop(
        engine,
        scheduler,
        loader,
        step,
        ctx=ctx,
        optim=recipe.optim,
        data_key="loader",
        evaluate=None if eval_fn is None else lambda: eval_fn(model, processor),
        export=lambda: export_atomic(ctx.out, model, processor),
        scalars=lambda: {"logit_scale": float(model.logit_scale.detach().exp())},
        rate="images_per_s",
        desc="pretrain",
        log=log,
    )
    skips = sum_over_ranks(loader.skip_counts())
    if ctx.rank == 0:
        if skips:
            log.warning("skipped samples by reason: %s", skips)
        (ctx.out / "skipped_samples.json").write_text(json.dumps(skips, indent=2))
    teardown_distributed()
    return ctx.out
