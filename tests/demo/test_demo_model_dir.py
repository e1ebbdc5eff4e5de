"""``loclip-demo --model DIR`` with a broken model directory: exit status 2 and one line naming ``--model`` and the
directory, before anything is built (the checks themselves: ``tests/core/test_model_dir.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers.models.llama.modeling_llama as llama
from safetensors.torch import load_file, save_file

from loclip.demo.cli import main


def break_dir(model_dir: Path, damage: str) -> None:
    """One kind of broken model directory a user might hand over."""
    weights, config = model_dir / "model.safetensors", model_dir / "config.json"
    if damage == "corrupt header":
        weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    elif damage == "pickle only":
        weights.unlink()
        (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04cos\nsystem\n.")  # would run os.system
    elif damage == "config list":
        config.write_text("[1, 2]")
    elif damage == "config not json":
        config.write_text("model_type: loclip")
    elif damage == "mislabelled":
        config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "llama"}))
    else:  # "wrong shape" or "missing weight": of the first tensor in the file
        tensors = load_file(weights)
        first = sorted(tensors)[0]
        if damage == "wrong shape":
            tensors[first] = torch.zeros(3, 3)
        else:
            del tensors[first]
        save_file(tensors, weights, metadata={"format": "pt"})


ERRORS = {
    "corrupt header": "model.safetensors is not a readable safetensors file: Error while deserializing header",
    "pickle only": "holds only pickle weights ['pytorch_model.bin']; loclip loads safetensors only",
    "config list": "config.json holds a JSON list, not an object of settings",
    "config not json": "config.json is not valid JSON: Expecting value",
    "wrong shape": "its weights do not fit the model its config.json describes: 1 of the wrong shape",
    "missing weight": "its weights do not fit the model its config.json describes: missing 1 [",
    "mislabelled": "has model_type 'llama'; expected 'loclip_llava' (chat mode, an MLLM from loclip-finetune) or "
    "'loclip' (encoder mode, from loclip-pretrain)",
}


def run_demo(model_dir: Path, capsys: pytest.CaptureFixture) -> str:
    """The demo's stderr for ``--model model_dir``, which must fail with status 2 before it serves anything."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(model_dir)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err and "LOAD REPORT" not in err
    last = err.strip().splitlines()[-1]  # above it, at most transformers' "Loading weights" progress bar
    assert last.startswith(f"loclip-demo: error: --model {str(model_dir)!r}"), err
    return last


@pytest.mark.parametrize("damage", list(ERRORS))
def test_a_broken_encoder_directory(encoder_model_dir: Path, tmp_path: Path, capsys, monkeypatch, damage: str) -> None:
    def no_llama(*args, **kwargs):  # the mislabelled folder used to build a default 7B Llama (22 GB)
        raise AssertionError("a Llama was built")

    monkeypatch.setattr(llama.LlamaModel, "__init__", no_llama)
    broken = Path(shutil.copytree(encoder_model_dir, tmp_path / "model"))
    break_dir(broken, damage)
    assert ERRORS[damage] in run_demo(broken, capsys)


@pytest.mark.parametrize("damage", ["missing weight", "wrong shape"])
def test_a_broken_chat_directory(chat_model_dir: Path, tmp_path: Path, capsys, damage: str) -> None:
    broken = Path(shutil.copytree(chat_model_dir, tmp_path / "model"))
    break_dir(broken, damage)
    assert ERRORS[damage] in run_demo(broken, capsys)
