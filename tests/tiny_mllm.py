"""Tiny MLLMs built here (random tiny encoder + tiny Llama), never downloaded: the fixtures tests/mllm (the
model) and tests/finetune (training it) share. Each folder's conftest.py imports the fixtures from here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.finetune.builder import compose, make_processor, tiny_llm
from loclip.finetune.data import ConversationDataset, collate
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


GROUND_TURNS = [
    {"from": "human", "value": "<image>\nWhere is the red square?"},
    {"from": "gpt", "value": "[100, 200, 300, 400]"},
    {"from": "human", "value": "What is in <region>? Where else?"},
    {"from": "gpt", "value": "a red square, also at [5, 6, 7, 8] and [1,2,3]"},  # the last group is malformed
]


@pytest.fixture
def ground_batch(tiny_ground, image: Image.Image, tmp_path: Path) -> dict[str, torch.Tensor]:
    """A collated batch of three ``tiny_ground`` records of ``image``: 2, 1 and 0 ``<ground>`` answers (a fourth
    record, a ``<ground>`` typed in the question, is skipped as ``ground_count``)."""
    _, processor = tiny_ground
    image.save(tmp_path / "a.png")
    say_hi = [{"from": "human", "value": "<image>\nsay hi"}, {"from": "gpt", "value": "hi"}]
    asked = [{"from": "human", "value": "<image> <ground>"}, {"from": "gpt", "value": "no"}]
    records = [
        {"image": "a.png", "conversations": GROUND_TURNS, "boxes": [[10, 10, 30, 30]]},
        {"image": "a.png", "conversations": GROUND_TURNS[:2]},
        {"image": "a.png", "conversations": say_hi},
        {"image": "a.png", "conversations": asked},
    ]
    data = ConversationDataset(records, processor, tmp_path, box_answers="ground")
    assert len(data) == 3 and data.skip_counts == {"ground_count": 1}  # a <ground> asked about has no box
    return collate([data[i] for i in range(3)], processor.tokenizer.pad_token_id)
