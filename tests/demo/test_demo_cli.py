"""The ``loclip-demo`` entry point as a real process: it serves the API on 127.0.0.1 and stops cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gradio_client import Client, handle_file

from loclip.training.distributed import free_port


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
    command = [sys.executable, "-m", "loclip.demo.cli", "--model", str(encoder_model_dir), "--port", str(port),
               "--threads", "1", "--max-boxes", "2"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        client = wait_for_client(f"http://127.0.0.1:{port}/", process)
        info = client.predict(api_name="/info")
        assert info["mode"] == "encoder" and info["limits"]["max_boxes"] == 2
        ranked = client.predict(image=handle_file(image_file), boxes=[[0, 0, 20, 20]], labels="red circle, ring",
                                api_name="/rank_labels")  # fmt: skip
        assert [r["label"] for r in ranked["regions"][0]["ranking"]] in (["red circle", "ring"], ["ring", "red circle"])
    finally:
        process.terminate()
        process.wait(timeout=30)
