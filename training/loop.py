"""The one training loop: both trainers build a model and define a step; everything else happens here.

``open_run`` starts a run (process group, output folder, the resolved recipe written beside it);
``train_loop`` resumes from the newest complete checkpoint, steps the DeepSpeed engine, guards against
non-finite losses, logs every term (tqdm, TensorBoard, ``metrics.jsonl``), evaluates and checkpoints
periodically, and at the end saves, evaluates and exports. Rank 0 alone evaluates and exports. Under ZeRO-3
the weights are partitioned over ranks: every rank first gathers the full weights, and for evaluation the
ZeRO-3 hooks are lifted meanwhile (``deepspeed.runtime.zero.stage3.unwrap_model_for_generation``), since a
forward on rank 0 alone would otherwise wait for the other ranks to gather each layer with it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from loclip.core.recipe import dump_recipe, to_dict
from loclip.core.threads import use_threads

from . import checkpoint as ckpt
from .config import OptimRecipe, RunRecipe
from .distributed import collective_device, max_over_ranks, mean_over_ranks, setup_distributed
from .metrics_log import MetricLog
from .run_folder import check_run_folder

logger = logging.getLogger("loclip.training")


class Resumable(Protocol):
    """A data stream whose position is part of a checkpoint."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class StepOutput:
    """What a trainer's step returns: the loss to backpropagate, the terms to log beside it (scalars), and
    how many items (images, tokens) this rank processed, for the throughput scalar."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0


@dataclass
class RunContext:
    """Where this process runs (``rank`` of ``world``, ``device``) and the run it belongs to: its folder ``out``
    (``run.output_dir``) and settings ``run``, and the resolved recipe, kept in every checkpoint."""

    rank: int
    world: int
    device: torch.device
    out: Path
    run: RunRecipe
    recipe: dict[str, Any] = field(default_factory=dict)


class NonFiniteLossError(RuntimeError):
    """The loss stayed non-finite for more steps than ``run.max_bad_steps`` tolerates."""


def open_run(recipe: Any, run: RunRecipe, loader_workers: int = 0) -> RunContext:
    """Set this process's threads (``run.threads``, else the cores this rank may use minus its
    ``loader_workers`` data-loader processes: ``loclip.core.threads``), join (or make) the process group,
    create ``run.output_dir``, check what it holds (``run_folder.check_run_folder``: no mixing with an earlier
    run, no resume under a changed recipe), and write the resolved recipe into it."""
    use_threads(run.threads, loader_workers, "run.threads", logger)
    rank, world, device = setup_distributed()
    out = Path(run.output_dir)
    tree = to_dict(recipe)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    check_run_folder(out, tree, run.resume, run.overwrite, rank)
    if rank == 0:
        dump_recipe(recipe, out / "recipe.yaml")
    return RunContext(rank, world, device, out, run, tree)


def zero3(engine: Any) -> bool:
    return engine.zero_optimization_stage() == 3


@contextlib.contextmanager
def full_weights(engine: Any, forward: bool = False) -> Iterator[None]:
    """Every rank holds the full weights for the duration (ZeRO-3 gathers its partitions; else a no-op).

    ``forward=True``: the module will also be run (on one rank); ZeRO-3's per-layer hooks are removed meanwhile
    and put back afterwards. Every rank must enter."""
    if not zero3(engine):
        yield
        return
    if forward:
        from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

        with unwrap_model_for_generation(engine):
            yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None):
        yield


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _bad_terms(loss: torch.Tensor, terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``{}`` when ``loss`` is finite on every rank (one scalar synchronised: a non-finite term makes the loss
    non-finite too); else the non-finite ones among the loss and its terms, for the message. Every rank agrees,
    so all skip or none."""
    bad = (~torch.isfinite(loss.detach().float().reshape(()))).float()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        bad = bad.to(collective_device())
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if not bad.item():
        return {}
    named = {"loss": loss, **terms}
    values = {name: float(v.detach().float().reshape(())) for name, v in named.items()}
    return {name: v for name, v in values.items() if not math.isfinite(v)} or {"loss (another rank)": float("nan")}


def train_loop(
    engine: Any,
    scheduler: Any,
    data: Resumable,
    step_fn: Callable[[dict[str, Any]], StepOutput],
    *,
    ctx: RunContext,
    optim: OptimRecipe,
    data_key: str,
    evaluate: Callable[[], dict[str, float]] | None = None,
    export: Callable[[], None] | None = None,
    scalars: Callable[[], dict[str, float]] | None = None,
    rate: str = "items_per_s",
    desc: str = "train",
    log: logging.Logger = logger,
) -> int:
    """Train ``engine`` to ``optim.steps`` optimizer steps, as ``ctx.run`` says (resume, logging, evaluation and
    checkpoint periods, bad-step tolerance); returns the step reached.

    Args:
        data: batches (dicts of tensors), resumable (``data_key`` names its state in the checkpoints).
        step_fn: one micro-batch (already on the device) → ``StepOutput``; the loop does backward and step.
        evaluate: held-out figures of the current weights (closes over the model), run on rank 0 and
            logged under ``eval/``.
        export: writes the final model into ``ctx.out`` (rank 0, full weights).
        scalars: extra scalars logged with each training log line (e.g. the temperature).
        rate: name of the throughput scalar (``count`` per second summed over ranks).
    """
    run, ckpt_root = ctx.run, ctx.out / "checkpoints"
    metrics = MetricLog(ctx.out, enabled=ctx.rank == 0)
    step = ckpt.resume_run(engine, ckpt_root, run.resume, data, data_key, metrics, log)

    def save() -> None:
        if not weights_finite(engine):
            newest = ckpt.latest_checkpoint(ckpt_root)
            raise NonFiniteLossError(
                f"step {step}: the weights are not finite (the last update diverged; the loss was still finite); "
                f"the run stopped without saving or exporting (newest checkpoint kept: {newest}). Lower optim.lr."
            )
        ckpt.save_checkpoint(
            engine, ckpt_root, step, {data_key: data.state_dict()}, run.keep_checkpoints, recipe=ctx.recipe or None
        )

    def do_evaluate() -> None:
        if evaluate is None:
            return
        engine.eval()
        with torch.no_grad(), full_weights(engine, forward=True):
            results = evaluate() if ctx.rank == 0 else {}
        engine.train()
        metrics.log(step, results, prefix="eval")
        if ctx.rank == 0:
            log.info("step %d eval: %s", step, {k: round(v, 4) for k, v in results.items()})

    engine.train()
    bar = tqdm(total=optim.steps, initial=step, disable=ctx.rank != 0 or not run.progress, desc=desc)
    batches: Iterable[dict[str, Any]] = iter(data)
    micro, bad_steps, seen, t0 = 0, 0, 0, time.perf_counter()
    while step < optim.steps:  # check before fetching: a fetched batch counts as consumed in the data state
        out = step_fn(to_device(next(batches), ctx.device))
        bad = _bad_terms(out.loss, out.terms)
        if bad:
            bad_steps += 1
            _report_bad(step + 1, bad, bad_steps, run, ckpt_root, log)
            continue  # no backward, no optimizer step: the weights stay as they were
        engine.backward(out.loss)
        engine.step()
        micro += 1
        seen += out.count * ctx.world
        if micro % optim.grad_accum:
            continue
        step += 1
        bar.update(1)
        if step % run.log_every == 0 or step == optim.steps:
            values = mean_over_ranks({"loss": out.loss, **out.terms})
            values["lr"] = scheduler.get_last_lr()[0]
            values.update(scalars() if scalars is not None else {})
            values[rate] = seen / (time.perf_counter() - t0)
            metrics.log(step, values)
            bar.set_postfix(loss=f"{values['loss']:.3f}")
            t0, seen = time.perf_counter(), 0
        if run.eval_every and step % run.eval_every == 0 and step < optim.steps:
            do_evaluate()
        if run.save_every and step % run.save_every == 0 and step < optim.steps:
            save()
    bar.close()

    save()
    close = getattr(data, "close", None)
    if callable(close):
        close()
    do_evaluate()
    if export is not None:
        with full_weights(engine):
            if ctx.rank == 0:
                export()
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    metrics.close()
    return step


def _report_bad(step: int, bad: dict[str, float], count: int, run: RunRecipe, root: Path, log: logging.Logger) -> None:
    """Warn about a skipped step, or stop the run once more than ``run.max_bad_steps`` were skipped."""
    terms = ", ".join(f"{k}={v}" for k, v in bad.items())
    if count <= run.max_bad_steps:
        log.warning(
            "step %d: non-finite loss (%s); step skipped (%d of run.max_bad_steps=%d)",
            step,
            terms,
            count,
            run.max_bad_steps,
        )
        return
    newest = ckpt.latest_checkpoint(root)
    kept = f"the newest checkpoint, {newest}, is kept" if newest else "no checkpoint was written"
    raise NonFiniteLossError(
        f"step {step}: the loss is not finite ({terms}) after {count} bad step(s), more than "
        f"run.max_bad_steps={run.max_bad_steps} allows; the run stopped without saving or exporting ({kept}). "
        "Lower optim.lr, check the data, or raise run.max_bad_steps to skip such steps."
    )


def weights_finite(engine: Any) -> bool:
    """Whether every weight this rank holds (its ZeRO-3 partition, else the full tensors) is finite, on all
    ranks. Checked before each checkpoint, so that a checkpoint never holds NaN weights."""
    flags = [torch.isfinite(getattr(p, "ds_tensor", p)).all() for p in engine.module.parameters()]
    local = bool(torch.stack(flags).all()) if flags else True  # one synchronisation, not one per tensor
    return max_over_ranks(0 if local else 1) == 0
