"""Modules that moved keep their old import path for one release, with a DeprecationWarning."""

from __future__ import annotations

import subprocess
import sys

import pytest

MOVED = [
    ("loclip.training.recipe", "loclip.core.recipe"),
    ("loclip.encoder.image_loading", "loclip.core.image_loading"),
    ("loclip.encoder.sentences", "loclip.core.sentences"),
    ("loclip.mllm.config", "loclip.finetune.config"),
    ("loclip.mllm.data", "loclip.finetune.data"),
    ("loclip.mllm.trainer", "loclip.finetune.trainer"),
    ("loclip.mllm.adapters", "loclip.finetune.adapters"),
    ("loclip.mllm.builder", "loclip.finetune.builder"),
    ("loclip.mllm.llm_prep", "loclip.finetune.llm_prep"),
    ("loclip.mllm.evaluate", "loclip.eval.mllm_referring"),
]


@pytest.mark.parametrize("old, new", MOVED)
def test_the_old_path_is_the_new_module_and_warns(old: str, new: str) -> None:
    # a fresh process: in this one the old module may already be imported (and then it warns no more)
    code = (
        f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        f"try:\n    import {old}\nexcept DeprecationWarning as e:\n    print('warned:', e)\n"
        f"warnings.simplefilter('ignore')\nimport importlib\n"
        f"print(importlib.import_module({old!r}) is importlib.import_module({new!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"warned: {old} moved to {new}" in out
    assert out.strip().endswith("True")
