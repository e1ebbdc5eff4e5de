"""Benchmark (GPU): ViT-B/16 pretraining throughput and MFU, bf16, DeepSpeed ZeRO-2, one GPU.

    .venv/bin/python bench/bench_gpu_pretrain.py --batch 256          # needs CUDA; refuses otherwise
    .venv/bin/python bench/bench_gpu_pretrain.py --batch 256 --compile

A ViT-B/16 encoder at 224 px (12-layer 512-wide text tower, the CLIP ViT-B/16 shape, ``vit_b16_config``)
wrapped in ``PretrainObjective`` and a DeepSpeed engine built by the trainer's own ``build_engine`` (AdamW,
ZeRO stage 2, bf16, gradient clipping 1.0). Batches are random tensors already on the GPU (the loader is
measured by ``bench_loader.py``): captions of 20 tokens in 77, K = 4 sub-captions of 16 tokens, M = 4 regions
with phrases of 6 tokens and random boxes. For the CLIP loss alone and for all losses it reports

- images/s: batch / median step time (forward + backward + optimizer step), warm-up steps excluded;
- MFU: model FLOPs per step (counted by ``torch.utils.flop_counter`` over one forward + backward) / step time /
  the bf16 matmul peak measured on the same GPU (the best of several 8192³ bf16 matmuls);
- efficiency: the all-losses step's FLOP/s / the CLIP step's FLOP/s (goal ≥ 0.9, as on the CPU).

``--compile`` compiles the vision trunk and the text tower (``nn.Module.compile``, dynamic shapes: the
objective trims text padding per batch). Results go to the ``gpu_pretrain`` key of docs/benchmarks.json and
the section "GPU pretraining (ViT-B/16)" of docs/benchmarks.md. ``--allow-cpu --preset tiny`` runs the same
code path on a CPU (fp32, tiny encoder) for a smoke test; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import benchlib as bl
import benchmodels as bm
import torch

SECTION = "GPU pretraining (ViT-B/16)"
COMMAND = ".venv/bin/python bench/bench_gpu_pretrain.py --batch 256"


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, n: int = 8192, reps: int = 20) -> float:
    """Best FLOP/s of an ``n x n @ n x n`` matmul in ``dtype`` on ``device``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(batch: int, image_size: int, vocab: int, device: torch.device, text_len: int = 77) -> dict:
    """A pretraining batch of random tensors (layout of ``loclip.pretrain.data.collate``), K = M = 4."""
    g = torch.Generator().manual_seed(0)
    k = m = 4

    def text(rows: tuple[int, ...], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(4, vocab - 1, (*rows, text_len), generator=g)
        mask = (torch.arange(text_len) < length).expand(*rows, text_len).long()
        ids = ids * mask
        ids[..., length - 1] = vocab - 1  # the EOS the CLIP text tower pools on
        return ids, mask

    ids, mask = text((batch,), 20)
    sub_ids, sub_mask_t = text((batch, k), 16)
    reg_ids, reg_mask_t = text((batch, m), 6)
    wh = 0.1 + 0.4 * torch.rand(batch, m, 2, generator=g)
    xy = (1 - wh) * torch.rand(batch, m, 2, generator=g)
    out = {
        "pixel_values": torch.randn(batch, 3, image_size, image_size, generator=g),
        "input_ids": ids,
        "attention_mask": mask,
        "sub_input_ids": sub_ids,
        "sub_attention_mask": sub_mask_t,
        "sub_mask": torch.ones(batch, k, dtype=torch.bool),
        "boxes": torch.cat([xy, xy + wh], dim=-1),
        "box_mask": torch.ones(batch, m, dtype=torch.bool),
        "region_input_ids": reg_ids,
        "region_attention_mask": reg_mask_t,
        "has_regions": torch.ones(batch, dtype=torch.bool),
    }
    return {key: v.to(device) for key, v in out.items()}


def count_flops(objective: torch.nn.Module, batch: dict, dtype: torch.dtype) -> float:
    """FLOPs of one forward + backward of ``objective`` on ``batch`` (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(batch["pixel_values"].device.type, dtype=dtype, enabled=dtype != torch.float32):
        loss, _ = objective(batch)
        loss.backward()
    objective.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def run_variant(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    from loclip.encoder import LoclipModel, tiny_config, vit_b16_config
    from loclip.pretrain.objective import PretrainObjective
    from loclip.training.config import OptimRecipe, RunRecipe
    from loclip.training.engine import build_engine

    vocab = 49408 if args.preset == "vit_b16" else 64
    config = (
        vit_b16_config(vocab_size=vocab)
        if args.preset == "vit_b16"
        else tiny_config(vocab_size=vocab, max_text_length=77, eos_token_id=vocab - 1)
    )
    torch.manual_seed(0)
    model = LoclipModel(config).to(device)
    if args.compile:
        model.vision_model.trunk.compile(dynamic=True)
        model.text_model.compile(dynamic=True)
    loss = bm.plain_losses() if name == "clip" else bm.all_losses()
    objective = PretrainObjective(model, loss)
    batch = random_batch(args.batch, config.vision_config.image_size, vocab, device)
    flops = count_flops(objective, batch, dtype) if not args.compile else None
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    engine, _ = build_engine(
        objective, RunRecipe(zero_stage=2, precision=precision), OptimRecipe(warmup_steps=0), args.batch
    )
    batch = {k: v.to(engine.device) for k, v in batch.items()}
    times = []
    for i in range(args.warmup + args.steps):
        _sync(device)
        start = time.perf_counter()
        total, _ = engine(batch)
        engine.backward(total)
        engine.step()
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    peak_mem = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    result = {
        "images_per_s": round(args.batch / step, 1),
        "step_ms": round(step * 1e3, 2),
        "flops_per_step": flops,
        "peak_memory_gib": round(peak_mem / 2**30, 2) if peak_mem else None,
    }
    del engine, objective, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"`{r['command']}` — {r['device']}, batch {r['batch']}, {r['precision']}, ZeRO-2, median of {r['steps']} "
        f"steps after {r['warmup']}; measured bf16 matmul peak {r['matmul_peak_tflops']:.0f} TFLOP/s; "
        f"torch.compile: {r['compile']}.",
        "",
        "| losses | images/s | step ms | TFLOP / step | MFU | efficiency vs CLIP | peak memory GiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in r["variants"].items():
        mfu = f"{v['mfu']:.1%}" if v.get("mfu") is not None else "—"
        eff = f"{v['efficiency']:.3f}" if v.get("efficiency") is not None else "—"
        tflop = f"{v['flops_per_step'] / 1e12:.2f}" if v.get("flops_per_step") else "—"
        lines.append(
            f"| {name} | {v['images_per_s']:.0f} | {v['step_ms']:.1f} | {tflop} | {mfu} | {eff} | "
            f"{v['peak_memory_gib'] or '—'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="images per step (per GPU)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile the towers")
    parser.add_argument("--preset", choices=("vit_b16", "tiny"), default="vit_b16")
    parser.add_argument("--allow-cpu", action="store_true", help="smoke-test the code path on a CPU (fp32)")
    parser.add_argument("--docs", type=Path, default=bl.DOCS, help="where benchmarks.md/.json live")
    args = parser.parse_args(argv)
    if torch.cuda.is_available():
        device, dtype = torch.device("cuda", torch.cuda.current_device()), torch.bfloat16
    elif args.allow_cpu:
        device, dtype = torch.device("cpu"), torch.float32
    else:
        print(
            "bench_gpu_pretrain: no CUDA device: this benchmark measures GPU throughput and MFU and does not run "
            "on a CPU (--allow-cpu --preset tiny runs its code path as a smoke test)",
            file=sys.stderr,
        )
        return 2

    from loclip.training.distributed import setup_distributed, teardown_distributed

    setup_distributed()
    try:
        peak = matmul_peak_flops(
            device, dtype, n=8192 if device.type == "cuda" else 512, reps=20 if device.type == "cuda" else 3
        )
        variants = {}
        for name in ("clip", "all losses"):
            v = run_variant(name, args, device, dtype)
            if v["flops_per_step"]:
                v["mfu"] = round(v["flops_per_step"] / (v["step_ms"] / 1e3) / peak, 4)
            variants[name] = v
            print(f"{name}: {v}", file=sys.stderr)
        clip = variants["clip"]
        for v in variants.values():
            if v.get("mfu") and clip.get("mfu"):
                v["efficiency"] = round(v["mfu"] / clip["mfu"], 3)
    finally:
        teardown_distributed()
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke test)",
        "batch": args.batch,
        "precision": "bf16" if dtype == torch.bfloat16 else "fp32",
        "steps": args.steps,
        "warmup": args.warmup,
        "compile": args.compile,
        "preset": args.preset,
        "matmul_peak_tflops": round(peak / 1e12, 2),
        "variants": variants,
        "torch": torch.__version__,
        "command": COMMAND + (" --compile" if args.compile else ""),
    }
    key = "gpu_pretrain_compile" if args.compile else "gpu_pretrain"
    bl.update_docs(
        args.docs, SECTION + (" with torch.compile" if args.compile else ""), markdown(results), key, results
    )
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
