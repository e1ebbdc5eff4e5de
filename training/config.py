"""Recipe sections every trainer shares: the optimizer and schedule, and the run (output, seed, DeepSpeed,
logging, checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from loclip.core.recipe import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitFloat, between


@dataclass
class OptimRecipe:
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.1
    beta1: Annotated[float, between(0, 1, high_open=True)] = 0.9
    beta2: Annotated[float, between(0, 1, high_open=True)] = 0.98
    eps: PositiveFloat = 1e-6
    warmup_steps: NonNegativeInt = 50
    steps: PositiveInt = 1000
    min_lr_ratio: UnitFloat = 0.0
    grad_clip: NonNegativeFloat = 1.0  # 0 = no clipping
    grad_accum: PositiveInt = 1


@dataclass
class RunRecipe:
    output_dir: str = "runs/quickstart"
    seed: NonNegativeInt = 0
    zero_stage: Literal[0, 1, 2, 3] = 0  # DeepSpeed ZeRO stage when no deepspeed_config is given
    # a DeepSpeed JSON (configs/deepspeed/); batch size, accumulation, clipping and precision are filled in
    deepspeed_config: str | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    log_every: PositiveInt = 10
    eval_every: NonNegativeInt = 0  # 0 = only at the end
    save_every: NonNegativeInt = 200  # 0 = only at the end
    keep_checkpoints: NonNegativeInt = 2  # newest complete checkpoints kept (0 = all)
    resume: bool = True  # continue from the newest complete checkpoint in output_dir/checkpoints
    overwrite: bool = False  # a fresh start (resume false) may delete an earlier run's checkpoints and logs
    max_bad_steps: NonNegativeInt = 0  # steps with a non-finite loss skipped before the run stops with an error
    progress: bool = True
    # torch intra-op threads; unset: the available cores minus the data loader's workers (loclip.core.threads)
    threads: PositiveInt | None = None
