"""``loclip-label`` killed with SIGKILL part-way through a shard, then run again, writes exactly the shards of
an uninterrupted run: finished shards are skipped, the half-written one is redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from label_helpers import save_tiny_mllm, save_tiny_owl

from loclip.cli.label import main as label_main
from loclip.synth import SceneConfig, write_split

HERE = Path(__file__).resolve().parent
SHARDS = ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _args(root: Path, out: Path) -> list[str]:
    return [
        "--shards",
        str(root / "synth" / "train" / "shard-{000000..000002}.tar"),
        "--out",
        str(out),
        "--captioner",
        str(root / "mllm"),
        "--long-tokens",
        "8",
        "--short-tokens",
        "4",
        "--detector",
        "python:label_helpers:slow_detector",
        "--phrases",
        "rules",
        "--phrases-from-existing",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--no-progress",
        "--log-level",
        "WARNING",
    ]


def _env(root: Path, pause: float) -> dict[str, str]:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "LABEL_TEST_OWL": str(root / "owl"), "LABEL_TEST_PAUSE": str(pause)}


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"loclip-label ended (rc {proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for loclip-label")
        time.sleep(0.01)


def test_sigkill_mid_shard_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_split(tmp_path / "synth", "train", 8, seed=2, config=SceneConfig(image_size=64), shard_size=3)
    save_tiny_owl(tmp_path / "owl")
    save_tiny_mllm(tmp_path / "mllm")

    # the uninterrupted reference, in this process (same stages, no pause)
    monkeypatch.setenv("LABEL_TEST_OWL", str(tmp_path / "owl"))
    monkeypatch.setenv("LABEL_TEST_PAUSE", "0")
    reference = tmp_path / "reference"
    assert label_main(_args(tmp_path, reference)) == 0

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "loclip.cli.label", *_args(tmp_path, out)]
    proc = subprocess.Popen(cmd, env=_env(tmp_path, 0.4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = lambda: [p for p in out.glob(".shard-000001.tar.tmp-*") if p.stat().st_size > 0]  # noqa: E731
    _wait_for(lambda: (out / SHARDS[0]).is_file() and bool(partial()), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (out / SHARDS[0]).is_file() and not (out / SHARDS[1]).exists() and partial()
    first_shard_bytes = (out / SHARDS[0]).read_bytes()
    first_shard_mtime = (out / SHARDS[0]).stat().st_mtime_ns

    rerun = subprocess.run(cmd, env=_env(tmp_path, 0.0), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (out / SHARDS[0]).stat().st_mtime_ns == first_shard_mtime  # finished: skipped, not rewritten
    assert (out / SHARDS[0]).read_bytes() == first_shard_bytes
    for name in SHARDS:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not list(out.glob(".*tmp-*")) and not list((out / ".label-state").glob(".*tmp-*"))
    assert (out / "sizes.json").read_text() == (reference / "sizes.json").read_text()
    summary = json.loads((out / "label_summary.json").read_text())
    assert summary["shards"] == {"inputs": 3, "finished": 3, "written_this_run": 2} and summary["images"] == 8
