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
    "encoder_step": ("clip_step_ratio", "full_step_ratio"),
    "regions": ("region1_overhead", "region16_overhead", "region64_overhead"),
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
