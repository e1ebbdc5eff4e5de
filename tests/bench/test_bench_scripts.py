"""The bench/ scripts run from the command line in their smoke mode and write the figures they promise.

No timing is asserted here: goals are checked by the benchmarks themselves (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

# json key -> headline figures every run must write
FIGURES = {
    "encoder_step": ("clip_step_ratio", "full_step_ratio", "full_step_efficiency"),
    "regions": ("region1_overhead", "region16_overhead", "region64_overhead", "region16_efficiency"),
    "mllm": ("mllm_ttft_ratio", "mllm_decode_ratio"),
    "loader": ("loader_headroom",),
}
OVERHEADS = ("region1_overhead", "region16_overhead", "region64_overhead")  # t / t_image - 1: may be below 0


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_run_all_quick_writes_every_figure(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benchmarks.json").write_text(json.dumps({"synth": {"kept": 1}}))  # other keys survive
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((docs / "benchmarks.json").read_text())
    assert data["synth"] == {"kept": 1}
    for key, figures in FIGURES.items():
        section = data[key]
        assert section["machine"]["torch_threads"] == 1
        for figure in figures:
            value = section[figure]
            assert _finite(value), (key, figure, value)
            assert value > -1 if figure in OVERHEADS else value > 0, (key, figure, value)
            assert data["summary"][figure] == value
    step = data["encoder_step"]["sizes"]["tiny"]
    assert all(_finite(v) and v > 0 for v in step["ms_per_step"].values())
    assert all(_finite(v) and v > 0 for v in step["peak_tensor_mib"].values())
    gflop = step["gflop_per_step"]  # each loss set adds work: the counts grow along the sets
    assert 0 < gflop["clip"] < gflop["+ sub-captions"] < gflop["+ regions"] < gflop["+ grounding (all)"]
    regions = data["regions"]["sizes"]["tiny"]["gflop_per_call"]
    assert 0 < regions["image"] < regions["region1"] < regions["region16"] < regions["region64"]
    assert data["mllm"]["sizes"]["tiny"]["same_tokens_as_baseline"] is True  # same weights, same greedy tokens
    assert data["loader"]["sizes"]["tiny"]["loader"]["samples_per_s_per_worker"] > 0
    text = (docs / "benchmarks.md").read_text()
    for section in (
        "## Summary",
        "## Encoder training step",
        "## Region features",
        "## MLLM generation",
        "## Data loader headroom",
    ):
        assert text.count(section) == 1, section
    assert (docs / "img" / "benchmarks.png").stat().st_size > 0


def test_gpu_benchmark_refuses_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run the real benchmark, not refuse")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu_pretrain.py"), "--docs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr
    assert not (tmp_path / "benchmarks.json").exists()


def test_llm_precision_benchmark_smoke_run_on_a_tiny_llm(tmp_path: Path) -> None:
    """bench_llm_precision in smoke mode on a tiny random Llama with a chat template writes its ratio; without
    an LLM directory it says how to make one."""
    from loclip.finetune.builder import tiny_llm
    from loclip.synth import build_tokenizer

    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_llm_precision.py"),
            "--llm",
            str(tmp_path / "none"),
            "--docs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode != 0 and "loclip-prepare-llm --out" in proc.stderr
    tokenizer = build_tokenizer(model_max_length=1024)
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    tiny_llm(tokenizer, hidden_size=32, layers=1, heads=2).save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_llm_precision.py"),
            "--quick",
            "--llm",
            str(tmp_path / "llm"),
            "--docs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "benchmarks.json").read_text())["llm_precision"]
    assert _finite(result["llm_bf16_speedup"]) and result["llm_bf16_speedup"] > 0
    assert result["step"]["tokens_per_step"] > 64  # the conversation and its 64 image tokens
    assert "## LLM training precision (SmolLM2 recipe)" in (tmp_path / "benchmarks.md").read_text()


def test_flop_count_matches_a_hand_count() -> None:
    """The efficiency figures divide by FlopCounterMode's counts: 2 per multiply-add, and a linear layer's
    backward (input and weight gradients) twice its forward."""
    import torch

    sys.path.insert(0, str(BENCH))
    import benchlib

    a, b = torch.randn(5, 7), torch.randn(7, 3)
    assert benchlib.count_flops(lambda: a @ b) == 2 * 5 * 7 * 3
    layer = torch.nn.Linear(7, 3, bias=False)
    x = torch.randn(5, 7, requires_grad=True)
    assert benchlib.count_flops(lambda: layer(x).sum().backward()) == 3 * 2 * 5 * 7 * 3
    assert benchlib.efficiency(200, 2.0, 100, 1.0) == 1.0  # twice the work in twice the time


def test_shared_cpu_benchmark_runs_the_quickstart_beside_a_neighbour(tmp_path: Path) -> None:
    """One real run of bench_shared_cpu (the pretraining quickstart on a small world, beside a busy process,
    loclip's settings), and its figures and table from a run table."""
    sys.path.insert(0, str(BENCH))
    import bench_shared_cpu as shared

    world = tmp_path / "world"
    make = [sys.executable, "-m", "loclip.cli.pretrain", "--synth-dir", str(world), "--quickstart-scenes", "64"]
    subprocess.run([*make, "--optim.steps", "1", "--run.output_dir", str(tmp_path / "w")], check=True, cwd=ROOT)
    run = shared.run_once("pretrain", world, tmp_path / "run", "loclip", "busy", steps=6, skip=0)
    assert run["rate"] > 0 and run["wall_s"] > 0
    table = {
        c: {s: {"rate": rate, "wall_s": 10.0 / rate} for s, rate in zip(shared.SETTINGS, (1.0, 2.0, 4.0))}
        for c in shared.CONDITIONS
    }
    figures = shared.figures(table)
    assert figures["idle_vs_best"] == 0.5 and figures["busy_over_idle_one"] == 1.0
    results = {"table": table, "figures": figures, "recipe": "pretrain", "steps": 6, "skip": 0, "rounds": 1}
    results |= {"threads": ["x"], "capability": "AVX2", "command": "c", "machine": {"cpu": "cpu", "cores": 2}}
    results["machine"] |= {"torch": "t", "date": "d"}
    text = shared.markdown(results)
    assert "| idle | 1 | 2 | 4 | 0.500 | ≥ 0.95 | **no** |" in text


def test_gpu_benchmark_code_path_on_a_cpu(tmp_path: Path) -> None:
    """--allow-cpu --preset tiny runs the GPU script's code (DeepSpeed engine, FLOP count, MFU, efficiency)."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu_pretrain.py"), "--allow-cpu", "--preset", "tiny"]
        + ["--batch", "4", "--steps", "2", "--warmup", "1", "--docs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    variants = json.loads((tmp_path / "benchmarks.json").read_text())["gpu_pretrain"]["variants"]
    assert variants["clip"]["efficiency"] == 1.0
    assert variants["all losses"]["flops_per_step"] > variants["clip"]["flops_per_step"] > 0
    assert _finite(variants["all losses"]["efficiency"]) and variants["all losses"]["efficiency"] > 0


def test_peak_memory_counts_what_a_call_holds_after_freeing_what_it_found() -> None:
    """A step that first drops the previous step's tensors and then allocates as much holds that much at its
    peak (measured from the start, it looked like 0)."""
    import torch

    sys.path.insert(0, str(BENCH))
    import benchlib

    held = {"t": torch.ones(2**20)}  # 4 MiB left by an earlier call

    def step() -> None:
        held["t"] = None
        held["t"] = torch.ones(2**20) * 2  # the product and its temporary: 8 MiB at once

    step()
    peaks = [benchlib.peak_tensor_bytes(step) for _ in range(2)]  # the 2nd frees what the 1st, profiled, made
    assert all(2 * 4 * 2**20 <= peak <= 3 * 4 * 2**20 for peak in peaks), peaks
