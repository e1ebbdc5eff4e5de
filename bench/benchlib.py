"""Shared pieces of the ``bench/`` scripts: timing, peak memory, machine description, synthetic data and the
docs writer.

Every figure is a median over repeated timed runs after warm-up runs that are not counted. A loclip
workload and its baseline are timed **interleaved** (A B, B A, A B, ...) in the same process with the
same torch thread count, so slow drifts of the machine hit both sides alike; the ratio is the ratio of
the two medians.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TRAINING_PROCESSES = (
    "loclip.cli.pretrain",
    "loclip-pretrain",
    "loclip.eval.learning_proof",
    "loclip-finetune",
    "loclip.cli.finetune",
    "loclip-label",
)


# ------------------------------------------------------------------------------------------------ timing
def interleaved_medians(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 2, inner: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, timed interleaved.

    Each function runs ``warmup`` times untimed, then ``repeats`` rounds; a round times ``inner`` calls of
    every function, in an order that is reversed every other round (so neither side always goes first).
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(inner):
                fns[name]()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def peak_tensor_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of tensor memory that one call of ``fn`` holds at once on top of what it found.

    Method: torch.profiler with ``profile_memory=True`` records every CPU allocator allocation and free
    during the call; the figure is the largest rise of their running sum, in time order, above its lowest
    point before that rise. Measured from the start instead, a call that first frees what an earlier call
    left (a training step dropping the previous step's gradients) would be credited with that memory: with
    ViT-B/16 towers that hid 660 MiB, and whether the profiler saw those frees changed from call to call.
    It counts tensors only (not Python objects or the allocator's cached pages), on CPU and on CUDA alike.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = low = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        live += e.nbytes()
        low = min(low, live)
        peak = max(peak, live - low)
    return peak


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them: matrix products,
    convolutions and attention (forward, and backward when ``fn`` runs it), 2 per multiply-add. Element-wise
    ops, norms, gathers (RoIAlign's sampling) and optimizer updates count 0: they are the work a FLOP/s figure
    leaves out, so that a workload heavy in them shows a lower FLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def efficiency(flops: int, seconds: float, base_flops: int, base_seconds: float) -> float:
    """Achieved FLOP/s of a workload over the baseline's FLOP/s, measured in the same run: 1.0 means the
    workload's extra work runs as fast per FLOP as the baseline's."""
    return (flops / seconds) / (base_flops / base_seconds)


def top_ops(fn: Callable[[], Any], rows: int = 12, calls: int = 3) -> list[dict[str, Any]]:
    """The ops taking the most self CPU time over ``calls`` calls of ``fn`` (torch.profiler), as table rows."""
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    averages = sorted(prof.key_averages(), key=lambda a: a.self_cpu_time_total, reverse=True)
    total = sum(a.self_cpu_time_total for a in averages) or 1.0
    return [
        {
            "op": a.key,
            "self_ms_per_call": round(a.self_cpu_time_total / 1e3 / calls, 3),
            "share": round(a.self_cpu_time_total / total, 3),
            "calls": a.count // calls,
        }
        for a in averages[:rows]
    ]


def ops_table(ops: list[dict[str, Any]]) -> str:
    """Markdown table of ``top_ops`` rows."""
    lines = ["| op | self ms / step | share | calls / step |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| `{o['op']}` | {o['self_ms_per_call']:.2f} | {o['share']:.0%} | {o['calls']} |" for o in ops]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ machine
def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    m = re.search(r"model name\s*:\s*(.+)", text)
    return m.group(1).strip() if m else platform.processor() or "unknown CPU"


def other_training_processes() -> list[str]:
    """Command lines of loclip training runs on this machine (their load would distort the timings)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if any(name in cmd for name in TRAINING_PROCESSES):
            found.append(cmd[:120])
    return found


def machine(threads: int) -> dict[str, Any]:
    """What the figures were measured on."""
    import transformers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(),
        "cores": cores,
        "torch_threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "date": datetime.date.today().isoformat(),
        "load_avg_1min_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "other_training_processes": len(other_training_processes()),
    }


def bench_parser(
    doc: str, sizes: str, size_names: Any, repeats: int, repeats_help: str, warmup: int | None, quick_help: str
) -> argparse.ArgumentParser:
    """The options every script shares: ``--sizes --repeats [--warmup] --threads --quick --docs``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", default=sizes, help="comma-separated: " + ", ".join(size_names))
    parser.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    if warmup is not None:
        parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (recorded)")
    parser.add_argument("--quick", action="store_true", help=f"smoke mode: {quick_help}")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where benchmarks.md/.json live")
    return parser


def set_threads(threads: int) -> None:
    """Fix torch's intra-op threads (and inter-op to 1) so loclip and baseline run alike."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


# ------------------------------------------------------------------------------------------------ data
@dataclass
class SynthData:
    """A synthetic-world train split on disk and the processor that batches it."""

    root: Path
    processor: Any
    tokenizer: Any
    image_size: int
    max_text_length: int


def make_synth(root: Path, scenes: int, image_size: int, max_text_length: int = 24, shard_size: int = 256) -> SynthData:
    """Write ``scenes`` training scenes at ``image_size`` px under ``root`` and build the tokenizer/processor."""
    from loclip.encoder import LoclipImageProcessor, LoclipProcessor
    from loclip.synth import SceneConfig, build_tokenizer, write_split

    write_split(root, "train", scenes, seed=0, config=SceneConfig(image_size=image_size), shard_size=shard_size)
    tokenizer = build_tokenizer(model_max_length=max_text_length)
    processor = LoclipProcessor(LoclipImageProcessor(image_size=image_size), tokenizer)
    return SynthData(root, processor, tokenizer, image_size, max_text_length)


def data_config(data: SynthData, batch_size: int, num_workers: int, k: int = 4, m: int = 4) -> Any:
    """The pretraining ``DataConfig`` over ``data`` (K sub-captions, M regions, the quickstart's text length)."""
    from loclip.pretrain.data import DataConfig
    from loclip.synth import shard_paths

    return DataConfig(
        train_shards=[str(p) for p in shard_paths(data.root, "train")],
        batch_size=batch_size,
        num_workers=num_workers,
        image_size=data.image_size,
        max_text_length=data.max_text_length,
        num_subcaptions=k,
        num_regions=m,
    )


def first_batch(data: SynthData, batch_size: int) -> dict[str, Any]:
    """One training batch from the real loader (in-process)."""
    import warnings

    from loclip.pretrain.data import build_train_loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer shards than readers is fine here
        loader = build_train_loader(data_config(data, batch_size, 0), data.processor)
    batch = next(iter(loader))
    loader.close()
    return batch


def temp_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="loclip-bench-")


# ------------------------------------------------------------------------------------------------ docs
def verdict(value: float, goal: float, lower_is_better: bool = True) -> str:
    ok = value <= goal if lower_is_better else value >= goal
    return "yes" if ok else "**no**"


def finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def update_docs(docs: Path, section: str, markdown: str, key: str, results: dict[str, Any]) -> None:
    """Replace (or append) ``## section`` of ``docs/benchmarks.md``; set ``results`` under ``key`` in
    ``docs/benchmarks.json``. Other sections and keys are kept."""
    docs.mkdir(parents=True, exist_ok=True)
    md_path, json_path = docs / "benchmarks.md", docs / "benchmarks.json"
    text = md_path.read_text() if md_path.exists() else "# Benchmarks\n\nFigures written by the scripts in `bench/`.\n"
    body = f"## {section}\n\n{markdown.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body
    md_path.write_text(text.rstrip("\n") + "\n")
    data = json.loads(json_path.read_text()) if json_path.exists() else {}
    data[key] = results
    json_path.write_text(json.dumps(data, indent=2) + "\n")


def report(
    args: argparse.Namespace,
    section: str,
    key: str,
    command: str,
    results: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """Add what every script records (``sizes`` stay in ``results``; repeats, warm-up or batches, the machine,
    the command), write the docs section and JSON key, print the table. Returns the full results."""
    extra = {k: getattr(args, k) for k in ("repeats", "warmup", "batches") if getattr(args, k, None) is not None}
    results = {**results, **extra, "machine": machine(args.threads), "command": command}
    update_docs(args.docs, section, markdown(results), key, results)
    print(markdown(results))
    return results


def mib(n: float) -> float:
    return round(n / 2**20, 2)
