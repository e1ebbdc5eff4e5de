"""Tiny MLLMs built here (random tiny encoder + tiny Llama), never downloaded."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.mllm.builder import compose, make_processor, tiny_llm
from loclip.mllm.conversation import ensure_tokens
from loclip.synth import build_tokenizer


def build_tiny(tokenizer=None, template: str = "plain", hidden: int = 32, box_answers: str = "text"):
    """(model, processor) with a 64 px / 8 px-patch encoder (64 image tokens) and a 2-layer Llama."""
    tokenizer = tokenizer or build_tokenizer(model_max_length=1024)
    ensure_tokens(tokenizer, template, ground=box_answers == "ground")
    torch.manual_seed(0)
    encoder = LoclipVisionModel(tiny_config().vision_config)
    llm = tiny_llm(tokenizer, hidden_size=hidden, layers=2, heads=4)
    model = compose(encoder, llm, tokenizer, box_answers=box_answers)
    return model.eval(), make_processor(model.config, tokenizer, template)


@pytest.fixture(name="build_tiny")
def build_tiny_fixture():
    """``build_tiny`` itself, for tests that need other sizes."""
    return build_tiny


@pytest.fixture
def tiny():
    return build_tiny()


@pytest.fixture
def tiny_ground():
    """A ``box_answers="ground"`` model: box answers are ``<ground>`` tokens drawn by the encoder's head."""
    return build_tiny(box_answers="ground")


@pytest.fixture
def image() -> Image.Image:
    img = Image.new("RGB", (80, 50), (128, 128, 128))
    img.paste((220, 30, 30), (10, 10, 30, 30))
    return img
