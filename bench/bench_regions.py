"""Benchmark: region embeddings for 1, 16 and 64 boxes per image against image embeddings alone.

    .venv/bin/python bench/bench_regions.py                 # writes docs/benchmarks.md and docs/benchmarks.json

Inference (``eval()``, ``no_grad``) of ``LoclipModel.get_region_features(pixel_values, boxes)`` (trunk once,
then the Prompter for all boxes in one call) against ``get_image_features(pixel_values)`` (the trunk and the
projection only) on the same images. ``regionR_overhead = t(R boxes) / t(image) - 1``.

The overhead is time against time: it mixes fixed per-call costs with the prompter's real work, which grows
with R. The FLOPs of each call are counted (``FlopCounterMode``), and ``regionR_efficiency = (FLOP/s of the
region call) / (FLOP/s of the image call)``, both measured in the same run; goal for R = 16: ≥ 0.9 at every size.
"""

from __future__ import annotations

import sys
from typing import Any

import benchlib as bl
import benchmodels as bm
import torch

SECTION = "Region features"
COMMAND = ".venv/bin/python bench/bench_regions.py"
GOAL = 0.9  # region16_efficiency
BOX_COUNTS = (1, 16, 64)


def random_boxes(batch: int, count: int, seed: int = 0) -> torch.Tensor:
    """``[batch, count, 4]`` valid normalised xyxy boxes, 5–35 % of a side wide and high."""
    g = torch.Generator().manual_seed(seed)
    wh = 0.05 + 0.3 * torch.rand(batch, count, 2, generator=g)
    xy = (1 - wh) * torch.rand(batch, count, 2, generator=g)
    return torch.cat([xy, xy + wh], dim=-1)


def measure_size(size: bm.Size, repeats: int, warmup: int, profile_rows: int) -> dict[str, Any]:
    tokenizer = type(
        "Vocab", (), {"__len__": lambda self: 64, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    )()
    model, _ = bm.build_pair(size, tokenizer, 24)
    model.eval()
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(size.batch, 3, size.image_size, size.image_size, generator=g)
    boxes = {r: random_boxes(size.batch, r) for r in BOX_COUNTS}

    def image() -> torch.Tensor:
        with torch.no_grad():
            return model.get_image_features(pixels)

    def region(r: int):
        def run() -> torch.Tensor:
            with torch.no_grad():
                return model.get_region_features(pixels, boxes[r])

        return run

    fns = {"image": image, **{f"region{r}": region(r) for r in BOX_COUNTS}}
    med = bl.interleaved_medians(fns, repeats, warmup)
    peaks = {name: bl.mib(bl.peak_tensor_bytes(fn)) for name, fn in fns.items()}
    flops = {name: bl.count_flops(fn) for name, fn in fns.items()}
    return {
        "shape": bm.size_dict(size),
        "ms_per_call": {k: round(v * 1e3, 3) for k, v in med.items()},
        "gflop_per_call": {k: round(v / 1e9, 4) for k, v in flops.items()},
        "gflop_per_s": {k: round(flops[k] / med[k] / 1e9, 2) for k in fns},
        **{f"region{r}_overhead": round(med[f"region{r}"] / med["image"] - 1, 3) for r in BOX_COUNTS},
        **{
            f"region{r}_efficiency": round(
                bl.efficiency(flops[f"region{r}"], med[f"region{r}"], flops["image"], med["image"]), 3
            )
            for r in BOX_COUNTS
        },
        "peak_tensor_mib": peaks,
        "top_ops_region16": bl.top_ops(fns["region16"], rows=profile_rows, calls=3) if profile_rows else [],
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"`{r['command']}` — inference, median of {r['repeats']} interleaved calls after {r['warmup']} warm-up calls, "
        f"{m['torch_threads']} torch thread(s), {m['cpu']} ({m['cores']} cores), torch {m['torch']}, {m['date']}. "
        "Random images and boxes (5–35 % of a side).",
        "",
        "| size | shape | image ms | 1 box ms | 16 boxes ms | 64 boxes ms | `region1_overhead` | "
        "`region16_overhead` | `region64_overhead` | `region16_efficiency` (goal ≥ 0.9) | met? |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, s in r["sizes"].items():
        ms = s["ms_per_call"]
        lines.append(
            f"| {name} | {bm.Size(**s['shape']).describe()} | {ms['image']:.2f} | {ms['region1']:.2f} | "
            f"{ms['region16']:.2f} | {ms['region64']:.2f} | {s['region1_overhead']:+.3f} | "
            f"{s['region16_overhead']:+.3f} | {s['region64_overhead']:+.3f} | {s['region16_efficiency']:.3f} | "
            f"{bl.verdict(s['region16_efficiency'], GOAL, False)} |"
        )
    lines += [
        "",
        "The work of each call (GFLOP, `FlopCounterMode`; RoIAlign's sampling counts 0) and how fast it runs "
        "(GFLOP/s); efficiency = FLOP/s of the region call / FLOP/s of the image call:",
        "",
        "| size | image GFLOP | 16 boxes GFLOP | image GFLOP/s | 1 box | 16 boxes | 64 boxes | "
        "`region1_efficiency` | `region16_efficiency` | `region64_efficiency` |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in r["sizes"].items():
        g, f = s["gflop_per_call"], s["gflop_per_s"]
        lines.append(
            f"| {name} | {g['image']:.3f} | {g['region16']:.3f} | {f['image']:.1f} | {f['region1']:.1f} | "
            f"{f['region16']:.1f} | {f['region64']:.1f} | {s['region1_efficiency']:.3f} | "
            f"{s['region16_efficiency']:.3f} | {s['region64_efficiency']:.3f} |"
        )
    lines += [
        "",
        "Peak tensor memory of one call (torch.profiler allocation events; MiB):",
        "",
        "| size | image | 1 box | 16 boxes | 64 boxes |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, s in r["sizes"].items():
        p = s["peak_tensor_mib"]
        lines.append(f"| {name} | {p['image']:.1f} | {p['region1']:.1f} | {p['region16']:.1f} | {p['region64']:.1f} |")
    for name, s in r["sizes"].items():
        if s["top_ops_region16"]:
            lines += [
                "",
                f"Where a 16-box call's time goes ({name}; torch.profiler, self CPU time):",
                "",
                bl.ops_table(s["top_ops_region16"]),
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bl.bench_parser(
        __doc__,
        "tiny,small,vit_b16",
        bm.SIZES,
        31,
        "timed calls per workload (tiny; larger sizes: half)",
        3,
        "tiny size, 2 repeats, 1 warm-up, no profile",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup = "tiny", 2, 1
    bl.set_threads(args.threads)
    sizes = {}
    for name in args.sizes.split(","):
        repeats = args.repeats if name == "tiny" else max(2, args.repeats // 2)
        sizes[name] = measure_size(bm.SIZES[name], repeats, args.warmup, 0 if args.quick else 8)
        print(f"{name}: {sizes[name]['ms_per_call']}", file=sys.stderr)
    first = sizes.get("tiny") or next(iter(sizes.values()))
    results = {
        **{f"region{r}_overhead": first[f"region{r}_overhead"] for r in BOX_COUNTS},
        **{f"region{r}_efficiency": first[f"region{r}_efficiency"] for r in BOX_COUNTS},
        "goal_region16_efficiency": GOAL,
        "sizes": sizes,
    }
    for name, s in sizes.items():
        if name != "tiny":
            results[f"region16_overhead_{name}"] = s["region16_overhead"]
            results[f"region16_efficiency_{name}"] = s["region16_efficiency"]
    return bl.report(args, SECTION, "regions", COMMAND, results, markdown)


if __name__ == "__main__":
    main()
