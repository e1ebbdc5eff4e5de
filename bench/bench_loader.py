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
    return {
        "samples_per_s_per_worker": round(batch / median, 1),
        "batch_interval_ms": round(median * 1e3, 2),
        "batches_timed": len(intervals),
        "worker_peak_rss_mib": rss,
        "batch_mib": bl.mib(batch_bytes),
    }


def loader_profile(data: bl.SynthData, batch: int, batches: int, rows: int) -> list[dict[str, Any]]:
    """The functions taking the most time while the loader makes ``batches`` batches in this process
    (``num_workers=0``; cProfile, own time), as table rows."""
    import cProfile
    import pstats

    from loclip.pretrain.data import build_train_loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = build_train_loader(bl.data_config(data, batch, num_workers=0), data.processor)
    it = iter(loader)
    next(it)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(batches):
        next(it)
    profiler.disable()
    loader.close()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (calls, primitive calls, own, cumulative, callers)
    total = sum(v[2] for v in stats.values()) or 1.0
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:rows]
    root = str(bl.ROOT)
    out = []
    for (file, line, name), (_, calls, own, cum, _) in top:
        where = file.replace(root + "/", "").split("site-packages/")[-1]
        out.append(
            {
                "function": f"{where}:{line}({name})" if line else name,
                "own_ms_per_batch": round(own / batches * 1e3, 2),
                "cum_ms_per_batch": round(cum / batches * 1e3, 2),
                "share": round(own / total, 3),
                "calls_per_batch": calls // batches,
            }
        )
    return out


def measure_size(size: bm.Size, repeats: int, batches: int, profile_rows: int = 0) -> dict[str, Any]:
    with bl.temp_dir() as tmp:
        scenes = size.batch * (batches + 4)
        data = bl.make_synth(Path(tmp), scenes, size.image_size, shard_size=max(64, scenes // 8))
        batch = bl.first_batch(data, size.batch)
        loclip, clip = bm.build_pair(size, data.tokenizer, data.max_text_length)
        fns = {"loclip_full": bm.loclip_step(loclip, bm.all_losses(), batch), "baseline": bm.clip_step(clip, batch)}
        med = bl.interleaved_medians(fns, repeats, warmup=2)
        loader = loader_rate(data, size.batch, batches, skip=2)
        profile = loader_profile(data, size.batch, min(batches, 8), profile_rows) if profile_rows else []
    step_sps = size.batch / med["loclip_full"]
    return {
        "shape": bm.size_dict(size),
        "loader": loader,
        "step_samples_per_s": {"loclip_full": round(step_sps, 1), "baseline": round(size.batch / med["baseline"], 1)},
        "loader_headroom": round(loader["samples_per_s_per_worker"] / step_sps, 2),
        "top_functions_loader": profile,
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"`{r['command']}` — one loader worker, median batch interval over {r['batches']} batches after 2; step: "
        f"median of {r['repeats']} all-losses steps, {m['torch_threads']} torch thread(s); {m['cpu']} "
        f"({m['cores']} cores), torch {m['torch']}, {m['date']}.",
        "",
        "| size | shape | loader samples/s per worker | all-losses step samples/s "
        "| `loader_headroom` (goal ≥ 3) | met? "
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
    for name, s in r["sizes"].items():
        if s.get("top_functions_loader"):
            lines += [
                "",
                f"Where the loader's time goes ({name}; in-process, cProfile own time, per batch of "
                f"{s['shape']['batch']}; the profiler itself slows Python-heavy code):",
                "",
                "| function | own ms | cumulative ms | share | calls |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            lines += [
                f"| `{f['function']}` | {f['own_ms_per_batch']:.2f} | {f['cum_ms_per_batch']:.2f} | "
                f"{f['share']:.0%} | {f['calls_per_batch']} |"
                for f in s["top_functions_loader"]
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bl.bench_parser(
        __doc__, "tiny,small", bm.SIZES, 9, "timed training steps", None, "tiny size, 2 steps, 3 batches"
    )
    parser.add_argument("--batches", type=int, default=20, help="timed loader batches")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.batches = "tiny", 2, 3
    bl.set_threads(args.threads)
    sizes = {}
    for name in args.sizes.split(","):
        repeats = args.repeats if name == "tiny" else max(2, args.repeats // 3)
        sizes[name] = measure_size(bm.SIZES[name], repeats, args.batches, 0 if args.quick else 10)
        print(f"{name}: {sizes[name]}", file=sys.stderr)
    first = sizes.get("tiny") or next(iter(sizes.values()))
    results = {
        "loader_headroom": first["loader_headroom"],
        "goal_loader_headroom": GOAL,
        "sizes": sizes,
    }
    for name, s in sizes.items():
        if name != "tiny":
            results[f"loader_headroom_{name}"] = s["loader_headroom"]
    return bl.report(args, SECTION, "loader", COMMAND, results, markdown)


if __name__ == "__main__":
    main()
