"""Run every CPU benchmark and write docs/benchmarks.json, the tables of docs/benchmarks.md and a plot.

    .venv/bin/python bench/run_all.py                 # full figures (about 12 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick --docs /tmp/bench   # smoke run, 1-2 repetitions

Each script runs in its own process (``bench_encoder_step``, ``bench_regions``, ``bench_mllm``,
``bench_loader``; ``--synth`` adds ``bench_synth``); other sections and keys of the docs files are kept.
Then the summary table (every headline figure, its goal and whether it is met) and
``docs/img/benchmarks.png`` are rewritten from the JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import benchlib as bl

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_encoder_step.py", "bench_regions.py", "bench_mllm.py", "bench_loader.py")
SECTION = "Summary"
# (json key, figure, goal, lower is better, what it compares)
FIGURES = (
    ("encoder_step", "clip_step_ratio", 1.05, True, "training step, CLIP loss: loclip / transformers CLIPModel (tiny)"),
    ("encoder_step", "clip_step_ratio_small", 1.05, True, "the same, small size"),
    ("encoder_step", "full_step_efficiency", 0.9, False, "all losses (K=4, M=4): FLOP/s / CLIPModel's FLOP/s (tiny)"),
    ("encoder_step", "full_step_efficiency_small", 0.9, False, "the same, small size"),
    ("encoder_step", "full_step_efficiency_vit_b16", 0.9, False, "the same, ViT-B/16 towers, 224 px"),
    ("encoder_step", "full_step_ratio", None, True, "time, all losses / CLIPModel: counts the added work (tiny)"),
    ("encoder_step", "full_step_ratio_small", None, True, "the same, small size"),
    ("regions", "region16_efficiency", 0.9, False, "16 boxes per image: FLOP/s / image FLOP/s (tiny)"),
    ("regions", "region16_efficiency_small", 0.9, False, "the same, small size"),
    ("regions", "region16_efficiency_vit_b16", 0.9, False, "the same, ViT-B/16 trunk, 224 px"),
    ("regions", "region1_overhead", None, True, "1 box per image: t(regions) / t(image) - 1 (tiny)"),
    ("regions", "region16_overhead", None, True, "16 boxes per image (tiny)"),
    ("regions", "region64_overhead", None, True, "64 boxes per image (tiny)"),
    ("regions", "region16_overhead_small", None, True, "16 boxes per image (small)"),
    ("regions", "region16_overhead_vit_b16", None, True, "16 boxes per image (ViT-B/16 trunk, 224 px)"),
    ("mllm", "mllm_ttft_ratio", 1.05, True, "MLLM time to first token: loclip / LlavaForConditionalGeneration"),
    ("mllm", "mllm_decode_ratio", 1.05, True, "MLLM decode: baseline tok/s / loclip tok/s"),
    ("loader", "loader_headroom", 3.0, False, "loader samples/s per worker / all-losses step samples/s (tiny)"),
    ("loader", "loader_headroom_small", 3.0, False, "the same, small size"),
)


def summary(data: dict[str, Any]) -> tuple[str, list[tuple[str, float, float | None, bool]]]:
    """Markdown summary table and the (figure, value, goal, lower-is-better) rows that have a value."""
    lines = ["| figure | value | goal | met? | what |", "| --- | ---: | ---: | --- | --- |"]
    rows = []
    for key, figure, goal, lower, what in FIGURES:
        value = data.get(key, {}).get(figure)
        if value is None:
            continue
        rows.append((figure, value, goal, lower))
        goal_text = "—" if goal is None else f"{'≤' if lower else '≥'} {goal:g}"
        met = "—" if goal is None else bl.verdict(value, goal, lower)
        lines.append(f"| `{figure}` | {value:.3f} | {goal_text} | {met} | {what} |")
    machine = next((data[k]["machine"] for k in ("encoder_step", "regions", "mllm", "loader") if k in data), None)
    if machine:
        lines += [
            "",
            f"Measured on {machine['cpu']} ({machine['cores']} cores), {machine['torch_threads']} torch "
            f"thread(s), torch {machine['torch']}, transformers {machine['transformers']}, "
            f"Python {machine['python']}, {machine['date']}; other loclip training processes running at the "
            f"time: {machine['other_training_processes']}.",
        ]
    return "\n".join(lines), rows


def plot(rows: list[tuple[str, float, float | None, bool]], path: Path) -> None:
    """Bar chart of the ratio figures with their goals (needs matplotlib, in the dev extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    rows = [r for r in rows if r[2] is not None and r[3]]  # lower-is-better figures with a goal
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    names = [r[0] for r in rows][::-1]
    values = [r[1] + (1.0 if "overhead" in r[0] else 0.0) for r in rows][::-1]  # overheads as t / t_image
    goals = [r[2] + (1.0 if "overhead" in r[0] else 0.0) for r in rows][::-1]
    colors = ["tab:green" if v <= g else "tab:red" for v, g in zip(values, goals)]
    ax.barh(names, values, color=colors)
    ax.scatter(goals, names, marker="|", s=300, color="black", label="goal", zorder=3)
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("loclip time / baseline time (overheads: t(regions) / t(image))")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode of every script")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (recorded)")
    parser.add_argument("--synth", action="store_true", help="also rerun bench_synth.py")
    parser.add_argument(
        "--scripts",
        help="comma-separated subset to rerun (e.g. bench_loader.py); the summary "
        "and plot are rebuilt from the JSON either way",
    )
    parser.add_argument("--docs", type=Path, default=bl.DOCS, help="where benchmarks.md/.json live")
    args = parser.parse_args(argv)
    busy = bl.other_training_processes()
    if busy and not args.quick:
        print(f"warning: {len(busy)} loclip training process(es) running; timings will be noisy", file=sys.stderr)
    scripts = SCRIPTS + (("bench_synth.py",) if args.synth else ())
    if args.scripts:
        scripts = tuple(args.scripts.split(","))
        unknown = [s for s in scripts if s not in SCRIPTS + ("bench_synth.py",)]
        if unknown:
            parser.error(f"unknown scripts {unknown}; choose from {list(SCRIPTS) + ['bench_synth.py']}")
    for script in scripts:
        cmd = [sys.executable, str(HERE / script), "--docs", str(args.docs)]
        if script != "bench_synth.py":
            cmd += ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        elif args.quick:
            cmd += ["--scenes", "50", "--repeats", "1"]
        print("+", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = json.loads((args.docs / "benchmarks.json").read_text())
    table, rows = summary(data)
    text = table + "\n\n![ratios against their goals](img/benchmarks.png)"
    bl.update_docs(args.docs, SECTION, text, "summary", {figure: value for figure, value, _, _ in rows})
    plot(rows, args.docs / "img" / "benchmarks.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
