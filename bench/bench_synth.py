"""Benchmark: synthetic-world scenes per second on one CPU core.

    python bench/bench_synth.py            # writes docs/benchmarks.md and docs/benchmarks.json

Measures ``generate_scene`` alone (pixels, boxes, text) at 64 and 128 px, and the whole
``write_split`` pipeline (plus PNG encoding, tar shards, image files, conversations) at 64 px.
The process is pinned to one core (Linux), so every thread shares it. Best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import benchlib as bl
import numpy as np

from loclip.synth import SceneConfig, generate_scene, write_split

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Synthetic world generation"
COMMAND = "python bench/bench_synth.py"
TARGET = 1000.0  # scenes/s at 64 px on one core (the bar)


def _best_rate(run: Callable[[], None], scenes: int, repeats: int) -> float:
    """Scenes per second of the fastest of ``repeats`` timed calls of ``run``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return scenes / min(times)


def measure(scenes: int, repeats: int) -> dict:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results: dict = {}
    for size in (64, 128):
        config = SceneConfig(image_size=size)
        generate_scene("train", 0, 0, config)  # warm the shape-mask cache outside the timing

        def generate(config: SceneConfig = config) -> None:
            for i in range(scenes):
                generate_scene("train", i, 0, config)

        results[f"generate_{size}px_scenes_per_s"] = round(_best_rate(generate, scenes, repeats), 1)
    with tempfile.TemporaryDirectory() as tmp:

        def write() -> None:
            write_split(tmp, "train", scenes, 0, SceneConfig(image_size=64))

        results["write_64px_scenes_per_s"] = round(_best_rate(write, scenes, repeats), 1)
    results.update(
        scenes_per_run=scenes,
        repeats=repeats,
        cores=1,
        cpu=bl.cpu_name(),
        python=platform.python_version(),
        numpy=np.__version__,
        date=datetime.date.today().isoformat(),
        command=COMMAND,
    )
    return results


def markdown(r: dict) -> str:
    verdict = "meets" if r["generate_64px_scenes_per_s"] >= TARGET else "MISSES"
    return f"""`{COMMAND}` — {r["scenes_per_run"]} scenes per run, best of {r["repeats"]}, one core ({r["cpu"]}),
Python {r["python"]}, numpy {r["numpy"]}, {r["date"]}.

| what | image size | scenes/s |
| --- | --- | --- |
| `generate_scene` (pixels, tight boxes, captions, questions) | 64 px | {r["generate_64px_scenes_per_s"]:,.0f} |
| `generate_scene` | 128 px | {r["generate_128px_scenes_per_s"]:,.0f} |
| `write_split` (+ PNG, tar shards, image files, conversations) | 64 px | {r["write_64px_scenes_per_s"]:,.0f} |

Generation at 64 px {verdict} the target of {TARGET:,.0f} scenes/s on one core.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where benchmarks.md/.json live")
    args = parser.parse_args(argv)
    results = measure(args.scenes, args.repeats)
    bl.update_docs(args.docs, SECTION, markdown(results), "synth", results)
    print(markdown(results))


if __name__ == "__main__":
    main()
