"""A short run of ``scripts/soak_demo.py``: a few clients for a few seconds, mixing good, cancelled and bad
requests, and no unexpected error (the full run, 20 clients for 5 minutes, is in docs/reliability.md)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak_demo.py"


def load_script():
    spec = importlib.util.spec_from_file_location("soak_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_short_soak_has_no_unexpected_errors(chat_server, image_file: Path) -> None:
    soak = load_script()
    result = soak.run_soak(chat_server.url, os.getpid(), image_file, clients=3, duration=6.0, idle_requests=3)
    assert result["unexpected_errors"] == 0, result["unexpected_examples"]
    assert all(result["counts"].get(kind, 0) > 0 for kind in ("good", "cancelled", "bad")), result["counts"]
    assert result["idle"]["service"]["n"] == 3 and result["load"]["service"]["n"] > 0
    assert "| unexpected errors | 0 |" in soak.markdown(result)
