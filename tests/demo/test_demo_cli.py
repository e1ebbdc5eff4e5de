"""The ``loclip-demo`` entry point: its request limits are the library's ``Limits`` under ``--limits.*`` (the old
flat flags kept), and as a real process it serves the API on 127.0.0.1 and stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from loclip.demo.backend import load_backend
from loclip.demo.cli import parse_args
from loclip.demo.limits import Limits, load_image
from loclip.training.distributed import free_port


def test_request_limits_are_the_librarys_limits_under_both_spellings(capsys: pytest.CaptureFixture) -> None:
    new = parse_args(["--limits.max_turns", "3", "--limits.max_file_mb", "2.5", "--concurrency", "2"])
    old = parse_args(["--max-turns", "3", "--max_file_mb", "2.5", "--concurrency", "2"])
    assert new == old and new.limits == Limits(max_turns=3, max_file_mb=2.5)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--max-boxes", "0"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "loclip-demo: error: limits.max_boxes = 0: expected an integer >= 1"


def wait_for_client(url: str, process: subprocess.Popen, timeout: float = 90.0) -> Client:
    """A client once the server answers (fails early with the server's output if it exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"loclip-demo exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            return Client(url, verbose=False, download_files=False)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_loclip_demo_serves_an_encoder(encoder_model_dir: Path, image_file: Path) -> None:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [
        sys.executable,
        "-m",
        "loclip.demo.cli",
        "--model",
        str(encoder_model_dir),
        "--port",
        str(port),
        "--threads",
        "1",
        "--limits.max_boxes",
        "2",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        client = wait_for_client(f"http://127.0.0.1:{port}/", process)
        info = client.predict(api_name="/info")
        assert info["mode"] == "encoder" and info["limits"]["max_boxes"] == 2
        ranked = client.predict(
            image=handle_file(image_file), boxes=[[0, 0, 20, 20]], labels="red circle, ring", api_name="/rank_labels"
        )
        served = [(r["label"], r["score"]) for r in ranked["regions"][0]["ranking"]]
        # the same model in this process: the served scores are its softmax, ranked best first
        (expected,) = load_backend(encoder_model_dir).rank(
            load_image(image_file, Limits()), [[0, 0, 20, 20]], ["red circle", "ring"]
        )
        assert sorted(label for label, _ in served) == ["red circle", "ring"]
        assert dict(served) == pytest.approx(dict(expected.ranking), abs=1e-3)
        assert [score for _, score in served] == sorted((score for _, score in served), reverse=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
