"""The DeepSpeed config both trainers hand to the engine."""

from __future__ import annotations

import json
from pathlib import Path

from .config import OptimRecipe, RunRecipe


def build_deepspeed_config(run: RunRecipe, optim: OptimRecipe, micro_batch_size: int) -> dict:
    """``run.deepspeed_config`` (a JSON, e.g. from ``configs/deepspeed/``) or a minimal one of stage
    ``run.zero_stage``, with batch size, accumulation, clipping and precision filled in from the recipe."""
    if run.deepspeed_config:
        path = Path(run.deepspeed_config)
        if not path.is_file():
            raise ValueError(f"run.deepspeed_config: no such file {str(path)!r}")
        config = json.loads(path.read_text())
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
