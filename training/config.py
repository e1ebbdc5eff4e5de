"""Recipe sections every trainer shares: the optimizer and schedule, and the run (output, seed, DeepSpeed,
logging, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OptimRecipe:
    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = 50
    steps: int = 1000
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1


@dataclass
class RunRecipe:
    output_dir: str = "runs/quickstart"
    seed: int = 0
    zero_stage: int = 0  # DeepSpeed ZeRO stage when no deepspeed_config is given
    deepspeed_config: str | None = None  # a DeepSpeed JSON (configs/deepspeed/); batch, clipping, precision are filled in
    precision: str = "fp32"  # fp32 | bf16
    log_every: int = 10
    eval_every: int = 0  # 0 = only at the end
    save_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = True  # continue from the newest complete checkpoint in output_dir/checkpoints
    max_bad_steps: int = 0  # steps with a non-finite loss skipped before the run stops with an error
    progress: bool = True
