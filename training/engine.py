"""The DeepSpeed engine both trainers use: its config, and the engine with AdamW and the cosine schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from loclip.core.json_input import InputRefused, read_json, where_file

from .config import OptimRecipe, RunRecipe
from .optim import build_optimizer, cosine_with_warmup


def build_deepspeed_config(run: RunRecipe, optim: OptimRecipe, micro_batch_size: int) -> dict:
    """``run.deepspeed_config`` (a JSON, e.g. from ``configs/deepspeed/``) or a minimal one of stage
    ``run.zero_stage``, with batch size, accumulation, clipping and precision filled in from the recipe."""
    if run.deepspeed_config:  # a file the user names: missing, not UTF-8 JSON or not an object is InputRefused
        config = read_json(run.deepspeed_config, "run.deepspeed_config")
        if not isinstance(config, dict):
            raise InputRefused(
                f"{where_file(run.deepspeed_config, 'run.deepspeed_config')} must hold a JSON object "
                f"of DeepSpeed settings, got {type(config).__name__}"
            )
    else:
        config = {"zero_optimization": {"stage": run.zero_stage}}
    config.update(
        train_micro_batch_size_per_gpu=micro_batch_size,
        gradient_accumulation_steps=optim.grad_accum,
        gradient_clipping=optim.grad_clip,
        bf16={"enabled": run.precision == "bf16"},
        fp16={"enabled": False},
    )
    config.setdefault("steps_per_print", 10**9)
    return config


def build_engine(
    module: nn.Module,
    run: RunRecipe,
    optim: OptimRecipe,
    micro_batch_size: int,
    lr_scales: dict[str, float] | None = None,
) -> tuple[Any, Any]:
    """``deepspeed.initialize`` on ``module`` with AdamW (no decay on norms, biases, temperature; per-name LR
    factors ``lr_scales``, see ``optim.param_groups``) and the cosine-with-warmup schedule → (engine, scheduler)."""
    import deepspeed

    o = optim
    optimizer = build_optimizer(module, o.lr, o.weight_decay, (o.beta1, o.beta2), o.eps, lr_scales)
    schedule = cosine_with_warmup(o.warmup_steps, o.steps, o.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    engine, _, _, _ = deepspeed.initialize(
        model=module,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=build_deepspeed_config(run, optim, micro_batch_size),
    )
    return engine, scheduler
