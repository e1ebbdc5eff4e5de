"""Run a quickstart over seeds (and recipe variants) and report mean ± sd of its held-out figures.

    python scripts/quickstart_seeds.py --out runs/seeds --seeds 0 1 2                       # the quickstart
    python scripts/quickstart_seeds.py --out runs/k6 --seeds 0 1 2 --config k6 --data.num_subcaptions 6
    python scripts/quickstart_seeds.py --out runs/mllm_seeds --trainer finetune --config mllm_quickstart

Each seed is one ``loclip-pretrain`` (``--trainer finetune``: ``loclip-finetune``) run in ``OUT/CONFIG-sSEED``
(its synthetic world made from the same seed); extra arguments are passed to every run. Figures come from each
run's ``metrics.jsonl`` and go to ``OUT/CONFIG.json`` (per seed, mean, sd, n) and a markdown table on stdout.
Re-running skips finished runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loclip.training.metrics_log import last_eval


def summarize(per_seed: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "sd", "n"}}`` over seeds (sample sd; 0 for one seed)."""
    metrics = sorted({m for figures in per_seed.values() for m in figures})
    out = {}
    for m in metrics:
        values = [figures[m] for figures in per_seed.values() if m in figures]
        out[m] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default="quickstart", help="name of this variant (folder and JSON names)")
    parser.add_argument(
        "--trainer",
        choices=("pretrain", "finetune"),
        default="pretrain",
        help="which quickstart: loclip-pretrain's encoder or loclip-finetune's MLLM",
    )
    args, extra = parser.parse_known_args(argv)
    per_seed: dict[int, dict[str, float]] = {}
    seconds: dict[int, float] = {}
    for seed in args.seeds:
        run = args.out / f"{args.config}-s{seed}"
        if not last_eval(run):
            start = time.perf_counter()
            cmd = [
                sys.executable,
                "-m",
                f"loclip.cli.{args.trainer}",
                "--output-dir",
                str(run),
                "--run.seed",
                str(seed),
                "--run.progress",
                "false",
                *extra,
            ]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            seconds[seed] = time.perf_counter() - start
        per_seed[seed] = last_eval(run)
    summary = summarize(per_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.config}.json").write_text(
        json.dumps(
            {"config": args.config, "args": extra, "per_seed": per_seed, "seconds": seconds, "summary": summary},
            indent=2,
        )
    )
    print(f"| {args.config} | " + " | ".join(f"{m}" for m in summary) + " |")
    print("|---|" + "---|" * len(summary))
    print(
        f"| mean ± sd (n={len(per_seed)}) | "
        + " | ".join(f"{s['mean']:.3f} ± {s['sd']:.3f}" for s in summary.values())
        + " |"
    )


if __name__ == "__main__":
    main()
