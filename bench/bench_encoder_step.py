"""Benchmark: one training step of loclip's encoder against transformers' ``CLIPModel``.

    .venv/bin/python bench/bench_encoder_step.py            # writes docs/benchmarks.md and docs/benchmarks.json

A step is forward + backward + ``torch.optim.AdamW.step`` on one batch from the real pretraining loader over
synthetic-world shards. loclip runs its pretraining objective (``PretrainObjective``); the baseline is a
``CLIPModel`` built from the same ``CLIPVisionConfig``/``CLIPTextConfig`` with the same weights, called with
``return_loss=True`` on the same batch (captions padded to ``max_text_length`` as the loader delivers them).

- ``clip_step_ratio``: loclip with the CLIP loss alone / baseline.
- ``full_step_ratio``: loclip with every loss (K = 4 sub-captions, grouping, M = 4 regions, grounding) / baseline.
- ``clip_step_ratio_equal_text``: as ``clip_step_ratio`` but the baseline's captions are cut to the batch's
  longest caption too (loclip drops trailing padding itself), so both do the same work.
Each loss set's own cost is listed as well (the terms switched on one after the other).

``full_step_ratio`` is time against time: it counts the work the method adds (K sub-captions through the text
tower, regions, grounding) as if it were overhead, so it cannot tell an efficient implementation from a
wasteful one. The figure that can is the **efficiency**: the FLOPs of each step are counted
(``FlopCounterMode``, forward and backward), and ``efficiency = (loclip FLOP/s) / (baseline FLOP/s)`` with both
measured in the same run; goal ≥ 0.9 for the full loss set at every size (``full_step_efficiency``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import benchlib as bl
import benchmodels as bm

SECTION = "Encoder training step"
COMMAND = ".venv/bin/python bench/bench_encoder_step.py"
GOALS = {"clip_step_ratio": 1.05, "full_step_efficiency": 0.9}


def loss_sets() -> dict[str, Any]:
    """Loss sets switched on one after the other (the last one is ``all_losses``)."""
    plain = bm.plain_losses()
    return {
        "clip": plain,
        "+ sub-captions": dataclasses.replace(plain, subcaptions=True),
        "+ grouping": dataclasses.replace(plain, subcaptions=True, grouping_weight=0.1),
        "+ regions": dataclasses.replace(
            plain, subcaptions=True, grouping_weight=0.1, regions=True, text_filter_by="exact"
        ),
        "+ grounding (all)": bm.all_losses(),
    }


def measure_size(size: bm.Size, repeats: int, warmup: int, profile_rows: int) -> dict[str, Any]:
    with bl.temp_dir() as tmp:
        data = bl.make_synth(Path(tmp), max(4 * size.batch, 64), size.image_size)
        batch = bl.first_batch(data, size.batch)
    loclip, clip = bm.build_pair(size, data.tokenizer, data.max_text_length)
    longest = int(batch["attention_mask"].sum(dim=1).max())
    trimmed = dict(
        batch, input_ids=batch["input_ids"][:, :longest], attention_mask=batch["attention_mask"][:, :longest]
    )
    fns = {"baseline": bm.clip_step(clip, batch), "baseline_equal_text": bm.clip_step(clip, trimmed)}
    sets = loss_sets()
    fns.update({name: bm.loclip_step(loclip, recipe, batch) for name, recipe in sets.items()})
    med = bl.interleaved_medians(fns, repeats, warmup)
    base = med["baseline"]
    full = med["+ grounding (all)"]
    peaks = {name: bl.peak_tensor_bytes(fns[name]) for name in ("baseline", "clip", "+ grounding (all)")}
    flops = {name: bl.count_flops(fn) for name, fn in fns.items()}
    eff = {k: round(bl.efficiency(flops[k], med[k], flops["baseline"], base), 3) for k in sets}
    return {
        "shape": bm.size_dict(size),
        "text_length": {"padded": batch["input_ids"].shape[1], "longest_caption": longest},
        "ms_per_step": {k: round(v * 1e3, 2) for k, v in med.items()},
        "clip_step_ratio": round(med["clip"] / base, 3),
        "clip_step_ratio_equal_text": round(med["clip"] / med["baseline_equal_text"], 3),
        "full_step_ratio": round(full / base, 3),
        "loss_set_ratio": {k: round(med[k] / base, 3) for k in sets},
        "gflop_per_step": {k: round(v / 1e9, 4) for k, v in flops.items()},
        "gflop_per_s": {k: round(flops[k] / med[k] / 1e9, 2) for k in fns},
        "efficiency": eff,
        "full_step_efficiency": eff["+ grounding (all)"],
        "samples_per_s": {
            "baseline": round(size.batch / base, 1),
            "loclip_clip": round(size.batch / med["clip"], 1),
            "loclip_full": round(size.batch / full, 1),
        },
        "peak_tensor_mib": {
            "baseline": bl.mib(peaks["baseline"]),
            "loclip_clip": bl.mib(peaks["clip"]),
            "loclip_full": bl.mib(peaks["+ grounding (all)"]),
        },
        "top_ops_full": bl.top_ops(fns["+ grounding (all)"], rows=profile_rows, calls=2) if profile_rows else [],
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"`{r['command']}` — median of {r['repeats']} interleaved steps after {r['warmup']} warm-up steps, "
        f"{m['torch_threads']} torch thread(s), {m['cpu']} ({m['cores']} cores), torch {m['torch']}, "
        f"transformers {m['transformers']}, {m['date']}.",
        "",
        "| size | shape | baseline ms | loclip CLIP-loss ms | loclip all-losses ms | `clip_step_ratio` (goal ≤ 1.05) "
        "| met? | `full_step_ratio` | `full_step_efficiency` (goal ≥ 0.9) | met? | `clip_step_ratio_equal_text` |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for name, s in r["sizes"].items():
        ms = s["ms_per_step"]
        shape = bm.Size(**s["shape"]).describe()
        lines.append(
            f"| {name} | {shape} | {ms['baseline']:.1f} | {ms['clip']:.1f} | {ms['+ grounding (all)']:.1f} | "
            f"{s['clip_step_ratio']:.3f} | {bl.verdict(s['clip_step_ratio'], GOALS['clip_step_ratio'])} | "
            f"{s['full_step_ratio']:.3f} | {s['full_step_efficiency']:.3f} | "
            f"{bl.verdict(s['full_step_efficiency'], GOALS['full_step_efficiency'], False)} | "
            f"{s['clip_step_ratio_equal_text']:.3f} |"
        )
    lines += [
        "",
        "What each loss set costs (step time / baseline step time; terms switched on one after the other):",
        "",
    ]
    names = list(next(iter(r["sizes"].values()))["loss_set_ratio"])
    lines += ["| size | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for name, s in r["sizes"].items():
        lines.append(f"| {name} | " + " | ".join(f"{s['loss_set_ratio'][k]:.3f}" for k in names) + " |")
    lines += [
        "",
        "The work each step does and how fast it does it: GFLOP per step (`FlopCounterMode`: matrix products and "
        "attention, forward and backward; element-wise ops, norms and the optimizer count 0), achieved GFLOP/s, "
        "and efficiency = FLOP/s / the baseline's FLOP/s in the same run (goal for all losses ≥ 0.9):",
        "",
        "| size | workload | GFLOP / step | GFLOP/s | efficiency |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, s in r["sizes"].items():
        for k in ["baseline", *names]:
            eff = "1 (reference)" if k == "baseline" else f"{s['efficiency'][k]:.3f}"
            lines.append(f"| {name} | {k} | {s['gflop_per_step'][k]:.3f} | {s['gflop_per_s'][k]:.1f} | {eff} |")
    lines += [
        "",
        "Peak tensor memory of one step (torch.profiler allocation events: the most the step holds at once; MiB):",
        "",
        "| size | baseline | loclip CLIP loss | loclip all losses |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, s in r["sizes"].items():
        p = s["peak_tensor_mib"]
        lines.append(f"| {name} | {p['baseline']:.1f} | {p['loclip_clip']:.1f} | {p['loclip_full']:.1f} |")
    for name, s in r["sizes"].items():
        if s["top_ops_full"]:
            lines += [
                "",
                f"Where the all-losses step's time goes ({name}; torch.profiler, self CPU time):",
                "",
                bl.ops_table(s["top_ops_full"]),
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bl.bench_parser(
        __doc__,
        "tiny,small,vit_b16",
        bm.SIZES,
        15,
        "timed steps per workload (tiny; larger sizes: half)",
        2,
        "tiny size, 2 repeats, 1 warm-up, no profile",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup = "tiny", 2, 1
    bl.set_threads(args.threads)
    sizes = {}
    for name in args.sizes.split(","):
        repeats = args.repeats if name == "tiny" else max(2, args.repeats // 2)
        sizes[name] = measure_size(bm.SIZES[name], repeats, args.warmup, 0 if args.quick else 10)
        print(f"{name}: {sizes[name]['ms_per_step']}", file=sys.stderr)
    first = sizes.get("tiny") or next(iter(sizes.values()))
    results = {
        "clip_step_ratio": first["clip_step_ratio"],
        "full_step_ratio": first["full_step_ratio"],
        "full_step_efficiency": first["full_step_efficiency"],
        "goals": GOALS,
        "sizes": sizes,
    }
    for name, s in sizes.items():
        if name != "tiny":
            results[f"full_step_ratio_{name}"] = s["full_step_ratio"]
            results[f"clip_step_ratio_{name}"] = s["clip_step_ratio"]
            results[f"full_step_efficiency_{name}"] = s["full_step_efficiency"]
    return bl.report(args, SECTION, "encoder_step", COMMAND, results, markdown)


if __name__ == "__main__":
    main()
