"""The three captioner paths on tiny random models built here: loclip's MLLM, a plain transformers LLaVA
(chat template) and a prompt-free VisionEncoderDecoder. Batched captions equal one-by-one captions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from label_helpers import save_tiny_llava, save_tiny_mllm, save_tiny_vision_encoder_decoder
from PIL import Image

from loclip.label import ChatCaptioner, LoclipCaptioner, PlainCaptioner, load_captioner

BUILDERS = {
    "loclip": (save_tiny_mllm, LoclipCaptioner),
    "llava": (save_tiny_llava, ChatCaptioner),
    "ved": (save_tiny_vision_encoder_decoder, PlainCaptioner),
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_captioner_kinds(name: str, tmp_path: Path) -> None:
    build, cls = BUILDERS[name]
    captioner = load_captioner(build(tmp_path / name), long_tokens=8, short_tokens=4)
    assert type(captioner) is cls
    images = [
        Image.new("RGB", (40, 30), (200, 30, 30)),
        Image.new("RGB", (20, 50), (30, 30, 200)),
        Image.new("RGB", (64, 64), (30, 170, 50)),
    ]
    batched = captioner(images)
    assert len(batched) == 3 and all(isinstance(c.short, str) and isinstance(c.long, str) for c in batched)
    assert batched == [captioner([im])[0] for im in images]  # padding and batching change nothing
    if name != "ved":  # random prompt-free decoders may stop at once; the prompted ones here do not
        assert all(c.long for c in batched)


def test_load_captioner_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no config.json"):
        load_captioner(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        load_captioner(tmp_path, kind="magic")
    with pytest.raises(ValueError, match="long_tokens"):
        LoclipCaptioner(None, None, long_tokens=0)
