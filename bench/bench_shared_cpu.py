"""Pretraining speed on a shared CPU: the quickstart recipe idle, beside one busy process, and beside light niced
neighbours, for loclip's thread settings, the settings before them, and one thread.

    .venv/bin/python bench/bench_shared_cpu.py               # 2 rounds, 80 steps per run (about 10 minutes)
    .venv/bin/python bench/bench_shared_cpu.py --recipe mllm # the finetuning quickstart
    .venv/bin/python bench/bench_shared_cpu.py --quick --docs /tmp/bench

Each run is ``loclip-pretrain`` (the quickstart recipe, its synthetic world made once and reused) in a fresh
process for ``--steps`` steps, logging every 5 steps; its figure is the median throughput (``images_per_s``,
or ``tokens_per_s`` for ``--recipe mllm``, the finetuning quickstart on a 40-step quickstart encoder) of the log
points after ``--skip`` steps. Within a round every (condition, setting) pair runs once, in an order reversed
every other round, so slow drifts of the machine hit every setting alike; a figure is the median over rounds,
and a ratio is taken between figures of the same run of this script.

Conditions (the neighbours start before the run and are killed after it):
- ``idle``: nothing else runs;
- ``busy``: one single-thread Python busy loop at normal priority (a compile, another training run);
- ``light``: three Python processes at nice 10, each busy 10 ms of every 40 ms (an idle server, a download).

Settings:
- ``old``: what loclip did before choosing threads itself: torch's default intra-op threads (one per core),
  libgomp's default spin-wait (``GOMP_SPINCOUNT=300000``, what it uses when no wait policy is set), the recipe's
  loader worker;
- ``loclip``: nothing set; the command chooses (``loclip.core.threads``);
- ``one``: ``OMP_NUM_THREADS=1`` (libgomp's default wait, as a user would set it).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchlib as bl

SETTINGS: dict[str, dict[str, str]] = {
    "old": {"OMP_NUM_THREADS": str(len(os.sched_getaffinity(0))), "GOMP_SPINCOUNT": "300000"},
    "loclip": {},
    "one": {"OMP_NUM_THREADS": "1"},
}
CONDITIONS = ("idle", "busy", "light")
THREAD_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "LOCLIP_THREADS")
BUSY = "while True: pass"
LIGHT = (
    "import time\n"
    "while True:\n"
    "    end = time.perf_counter() + 0.010\n"
    "    while time.perf_counter() < end: pass\n"
    "    time.sleep(0.030)\n"
)


def neighbours(condition: str) -> list[subprocess.Popen]:
    """Start the condition's neighbour processes."""
    if condition == "busy":
        return [subprocess.Popen([sys.executable, "-c", BUSY])]
    if condition == "light":
        return [subprocess.Popen([sys.executable, "-c", LIGHT], preexec_fn=lambda: os.nice(10)) for _ in range(3)]
    return []


RECIPES = {
    # recipe: (command module, throughput scalar in metrics.jsonl, its unit, flags beside the common ones)
    "pretrain": ("loclip.cli.pretrain", "train/images_per_s", "images/s", ["--eval.max_scenes", "16"]),
    "mllm": ("loclip.cli.finetune", "train/tokens_per_s", "tokens/s", ["--eval.max_questions", "8"]),
}


def run_once(recipe: str, world: Path, out: Path, setting: str, condition: str, steps: int, skip: int) -> dict:
    """One quickstart run of ``recipe`` for ``steps`` steps under ``setting`` beside ``condition``'s
    neighbours: median throughput after ``skip`` steps, and the wall time of the whole command. ``world``: the
    pretraining quickstart's world folder, or for ``mllm`` a folder holding ``encoder`` and ``synth``."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(SETTINGS[setting])
    module, scalar, _, extra = RECIPES[recipe]
    common = ["--run.output_dir", str(out), "--optim.steps", str(steps), "--run.log_every", "5"]
    common += ["--run.save_every", "0", "--run.progress", "false", *extra]
    if recipe == "pretrain":
        where = ["--synth-dir", str(world)]
    else:  # the finetuning quickstart makes its world under OUTPUT_DIR/synth: a copy of one made before
        shutil.copytree(world / "synth", out / "synth")
        where = ["--model.encoder", str(world / "encoder")]
    others = neighbours(condition)
    try:
        time.sleep(0.5 if others else 0.0)  # let the neighbours get going
        start = time.perf_counter()
        command = [sys.executable, "-m", module, *where, *common]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    finally:
        for p in others:
            p.kill()
            p.wait()
    rates = [
        r[scalar]
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if scalar in r and r["step"] > skip
    ]
    return {"rate": statistics.median(rates), "wall_s": wall}


def prepare(recipe: str, tmp: Path, world: Path | None) -> Path:
    """The world the runs share: the pretraining quickstart's (made by a 5-step run when absent); for ``mllm``
    also a 40-step quickstart encoder and the finetuning quickstart's world beside it."""
    base = world or tmp / "world"
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if recipe == "pretrain":
        if not (base / "world.json").is_file():
            run = [sys.executable, "-m", "loclip.cli.pretrain", "--synth-dir", str(base), "--optim.steps", "5"]
            subprocess.run([*run, "--run.output_dir", str(tmp / "make-world")], **quiet)
        return base
    folder = tmp / "mllm"
    steps = ["--optim.steps", "40", "--run.save_every", "0", "--eval.max_scenes", "16"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "loclip.cli.pretrain",
            "--synth-dir",
            str(base),
            "--run.output_dir",
            str(folder / "encoder"),
            *steps,
        ],
        **quiet,
    )
    finetune = ["--model.encoder", str(folder / "encoder"), "--run.output_dir", str(tmp / "make-mllm-world")]
    subprocess.run([sys.executable, "-m", "loclip.cli.finetune", *finetune, "--optim.steps", "1"], **quiet)
    shutil.copytree(tmp / "make-mllm-world" / "synth", folder / "synth")
    return folder


def measure(recipe: str, world: Path, tmp: Path, steps: int, skip: int, rounds: int) -> dict[str, dict[str, dict]]:
    """``{condition: {setting: {rate, wall_s, samples}}}``, medians over ``rounds`` interleaved rounds."""
    pairs = [(c, s) for c in CONDITIONS for s in SETTINGS]
    samples: dict[tuple[str, str], list[dict[str, float]]] = {p: [] for p in pairs}
    for r in range(rounds):
        for i, (condition, setting) in enumerate(pairs if r % 2 == 0 else pairs[::-1]):
            out = tmp / f"run-{r}-{i}"
            samples[(condition, setting)].append(run_once(recipe, world, out, setting, condition, steps, skip))
            print(condition, setting, samples[(condition, setting)][-1], flush=True)
    table: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in CONDITIONS}
    for (condition, setting), runs in samples.items():
        table[condition][setting] = {
            "rate": round(statistics.median(x["rate"] for x in runs), 1),
            "wall_s": round(statistics.median(x["wall_s"] for x in runs), 1),
            "samples": [round(x["rate"], 1) for x in runs],
        }
    return table


def figures(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, float]:
    """The headline ratios: loclip's settings against the best setting of each condition, and each setting's
    speed beside neighbours against its own idle speed."""
    out: dict[str, float] = {}
    for condition, row in table.items():
        best = max(v["rate"] for v in row.values())
        out[f"{condition}_vs_best"] = round(row["loclip"]["rate"] / best, 3)
        for setting, v in row.items():
            if condition != "idle":
                idle = table["idle"][setting]
                out[f"{condition}_over_idle_{setting}"] = round(v["rate"] / idle["rate"], 3)
                out[f"{condition}_wall_over_idle_{setting}"] = round(v["wall_s"] / idle["wall_s"], 3)
    return out


def markdown(results: dict[str, Any]) -> str:
    table, fig, m = results["table"], results["figures"], results["machine"]
    unit = RECIPES[results["recipe"]][2]
    lines = [
        f"The {results['recipe']} quickstart recipe, run for {results['steps']} steps in a fresh process per run; "
        f"median {unit} of the steps after {results['skip']}, median over {results['rounds']} interleaved "
        f"rounds (per-round figures in `benchmarks.json`). Settings: {'; '.join(results['threads'])}.",
        "",
        "| neighbours | " + " | ".join(f"`{s}` {unit}" for s in SETTINGS) + " | `loclip` / best | goal | met? |",
        "| --- | " + " | ".join("---:" for _ in SETTINGS) + " | ---: | ---: | --- |",
    ]
    for condition, row in table.items():
        ratio = fig[f"{condition}_vs_best"]
        cells = " | ".join(f"{row[s]['rate']:.0f}" for s in SETTINGS)
        lines.append(f"| {condition} | {cells} | {ratio:.3f} | ≥ 0.95 | {bl.verdict(ratio, 0.95, False)} |")
    lines += [
        "",
        "Each setting beside neighbours against its own idle run: speed ratio, and the whole command's wall time "
        "ratio (start-up, steps, final evaluation and export; goal for `loclip` beside light neighbours ≤ 1.5).",
        "",
        "| setting | busy / idle speed | light / idle speed | busy / idle wall | light / idle wall |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in SETTINGS:
        cells = [fig[f"{c}_over_idle_{s}"] for c in ("busy", "light")]
        cells += [fig[f"{c}_wall_over_idle_{s}"] for c in ("busy", "light")]
        lines.append(f"| `{s}` | " + " | ".join(f"{x:.3f}" for x in cells) + " |")
    lines += [
        "",
        f"Measured on {m['cpu']} ({m['cores']} cores, torch CPU capability {results['capability']}), "
        f"torch {m['torch']}, {m['date']}. Command: `{results['command']}`.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = bl.argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="pretrain")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--skip", type=int, default=20, help="steps not counted (warm-up)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--world", type=Path, default=None, help="a pretraining quickstart world to reuse")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 1 round of 15 steps")
    parser.add_argument("--docs", type=Path, default=bl.DOCS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.skip, args.rounds = 15, 5, 1
    import torch

    with bl.temp_dir() as tmp_name:
        tmp = Path(tmp_name)
        world = prepare(args.recipe, tmp, args.world)
        results = {
            "recipe": args.recipe,
            "table": measure(args.recipe, world, tmp, args.steps, args.skip, args.rounds),
            "steps": args.steps,
            "skip": args.skip,
            "rounds": args.rounds,
            "threads": [
                f"`{name}`: {' '.join(f'{k}={v}' for k, v in env.items()) or 'nothing set'}"
                for name, env in SETTINGS.items()
            ],
            "capability": torch.backends.cpu.get_cpu_capability(),
        }
    results["figures"] = figures(results["table"])
    args.threads = 0
    flags = f" --recipe {args.recipe}" + (" --quick" if args.quick else "")
    section = "Shared CPU" if args.recipe == "pretrain" else "Shared CPU: MLLM finetuning"
    key = "shared_cpu" if args.recipe == "pretrain" else "shared_cpu_mllm"
    bl.report(args, section, key, f"python bench/bench_shared_cpu.py{flags}", results, markdown)


if __name__ == "__main__":
    main()
