"""Benchmark: data-loader samples/s per worker on synthetic-world shards against the training step's appetite.

    .venv/bin/python bench/bench_loader.py                  # writes docs/benchmarks.md and docs/benchmarks.json

The loader is the pretraining one (``build_train_loader``: shard reading, PNG decoding, sub-caption and
region sampling, letterboxing and tokenising through ``LoclipProcessor``) with one worker process, K = 4
sub-captions, M = 4 regions, over shards written by ``write_split``. Its rate is the batch size over the
median interval between batches after the first ones (worker start-up excluded). The step's appetite is
the batch size over the median time of loclip's all-losses training step at the same size and batch, in
the same run. ``loader_headroom`` = loader samples/s per worker / step samples/s; goal ≥ 3.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import benchlib as bl
import benchmodels as bm
import torch

SECTION = "Data loader headroom"
COMMAND = ".venv/bin/python bench/bench_loader.py"
GOAL = 3.0


def _worker_peak_rss_mib() -> float:
    """Largest peak RSS (VmHWM) among this process's child processes (the loader worker), MiB."""
    peak = 0
    for task in Path(f"/proc/{os.getpid()}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
    return bl.mib(peak)


def loader_rate(data: bl.SynthData, batch: int, batches: int, skip: int) -> dict[str, Any]:
    """Samples/s of one loader worker (median batch interval) and the worker's peak RSS."""
    from loclip.pretrain.data import build_train_loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = build_train_loader(bl.data_config(data, batch, num_workers=1), data.processor)
    intervals, last = [], None
    it = iter(loader)
    for i in range(skip + batches):
        b = next(it)
        now = time.perf_counter()
        if i >= skip and last is not None:
            intervals.append(now - last)
        last = now
    rss = _worker_peak_rss_mib()
    batch_bytes = sum(v.numel() * v.element_size() for v in b.values() if isinstance(v, torch.Tensor))
    loader.close()
    median = statistics.median(intervals)
    return {"samples_per_s_per_worker": round(batch / median, 1), "batch_interval_ms": round(median * 1e3, 2),
            "batches_timed": len(intervals), "worker_peak_rss_mib": rss, "batch_mib": bl.mib(batch_bytes)}  # fmt: skip


def measure_size(size: bm.Size, repeats: int, batches: int) -> dict[str, Any]:
    with bl.temp_dir() as tmp:
        scenes = size.batch * (batches + 4)
        data = bl.make_synth(Path(tmp), scenes, size.image_size, shard_size=max(64, scenes // 8))
        batch = bl.first_batch(data, size.batch)
        loclip, clip = bm.build_pair(size, data.tokenizer, data.max_text_length)
        fns = {"loclip_full": bm.loclip_step(loclip, bm.all_losses(), batch), "baseline": bm.clip_step(clip, batch)}
        med = bl.interleaved_medians(fns, repeats, warmup=2)
        loader = loader_rate(data, size.batch, batches, skip=2)
    step_sps = size.batch / med["loclip_full"]
    return {
        "shape": bm.size_dict(size),
        "loader": loader,
        "step_samples_per_s": {"loclip_full": round(step_sps, 1), "baseline": round(size.batch / med["baseline"], 1)},
        "loader_headroom": round(loader["samples_per_s_per_worker"] / step_sps, 2),
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"`{r['command']}` — one loader worker, median batch interval over {r['batches']} batches after 2; step: "
        f"median of {r['repeats']} all-losses steps, {m['torch_threads']} torch thread(s); {m['cpu']} "
        f"({m['cores']} cores), torch {m['torch']}, {m['date']}.",
        "",
        "| size | shape | loader samples/s per worker | all-losses step samples/s | `loader_headroom` (goal ≥ 3) | met? "
        "| worker peak RSS MiB | one batch MiB |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, s in r["sizes"].items():
        lo = s["loader"]
        lines.append(
            f"| {name} | {bm.Size(**s['shape']).describe()} | {lo['samples_per_s_per_worker']:.0f} | "
            f"{s['step_samples_per_s']['loclip_full']:.0f} | {s['loader_headroom']:.2f} | "
            f"{bl.verdict(s['loader_headroom'], GOAL, lower_is_better=False)} | {lo['worker_peak_rss_mib']:.0f} | "
            f"{lo['batch_mib']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small", help="comma-separated: " + ", ".join(bm.SIZES))
    parser.add_argument("--repeats", type=int, default=9, help="timed training steps")
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the step (recorded)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny size, 2 steps, 3 batches")
    parser.add_argument("--docs", type=Path, default=bl.DOCS, help="where benchmarks.md/.json live")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.batches = "tiny", 2, 3
    bl.set_threads(args.threads)
    sizes = {}
    for name in args.sizes.split(","):
        repeats = args.repeats if name == "tiny" else max(2, args.repeats // 3)
        sizes[name] = measure_size(bm.SIZES[name], repeats, args.batches)
        print(f"{name}: {sizes[name]}", file=sys.stderr)
    first = sizes.get("tiny") or next(iter(sizes.values()))
    results = {
        "loader_headroom": first["loader_headroom"],
        "goal_loader_headroom": GOAL,
        "sizes": sizes,
        "repeats": args.repeats,
        "batches": args.batches,
        "machine": bl.machine(args.threads),
        "command": COMMAND,
    }
    for name, s in sizes.items():
        if name != "tiny":
            results[f"loader_headroom_{name}"] = s["loader_headroom"]
    bl.update_docs(args.docs, SECTION, markdown(results), "loader", results)
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
