"""Demo fixtures: tiny models built and saved here (once per session), and demo servers on free ports.

The tiny MLLM is trained for a few seconds to answer every question with the same sentence and box
(``ANSWER``), so the tests can check that an answer's box is parsed, listed and drawn. Random weights would
answer with arbitrary tokens and, most of the time, no box at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from loclip.encoder import LoclipImageProcessor, LoclipModel, LoclipProcessor, LoclipVisionModel, tiny_config
from loclip.finetune.builder import compose, make_processor, tiny_llm
from loclip.mllm.conversation import encode_conversation, ensure_tokens
from loclip.synth import build_tokenizer
from loclip.training.distributed import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported (by the server fixtures)

ANSWER = "a small red circle [100, 200, 600, 700]"
TRAIN_QUESTIONS = [
    ("What is in <region>?", 1),
    ("Where is the large blue star?", 0),
    ("What is in <region> and <region>?", 2),
    ("Describe the image.", 0),
    ("What object is in <region>?", 1),
    ("Find the green square.", 0),
]


RECT_COLOURS = [(220, 30, 30), (30, 180, 60), (40, 60, 220), (230, 210, 40), (20, 20, 20), (240, 240, 240)]


def scene_image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A random noisy image with a coloured rectangle (no magenta, which the browser test looks for)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(60, 180, size=(h, w, 3), dtype=np.uint8)
    x, y = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    pixels[y : y + h // 3, x : x + w // 3] = RECT_COLOURS[int(rng.integers(len(RECT_COLOURS)))]
    return Image.fromarray(pixels)


def train_constant_answer(model, processor, steps: int = 120) -> None:
    """Teach ``model`` to answer ``ANSWER`` whatever the image, question and boxes (a few seconds on a CPU)."""
    tokenizer = processor.tokenizer
    batches = []
    for i, (question, n) in enumerate(TRAIN_QUESTIONS * 2):
        image = scene_image(i, (64 + 16 * (i % 3), 64))
        boxes = [[4.0 + 8 * k, 4.0, 20.0 + 8 * k, 30.0] for k in range(n)]
        ids, labels = encode_conversation(
            tokenizer,
            [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": ANSWER}],
            processor.num_image_tokens,
            processor.template,
        )
        inputs = processor.image_processor(image, return_tensors="pt", return_original_sizes=True)
        extra = {}
        if boxes:
            extra["boxes"], extra["box_mask"] = processor.image_processor.preprocess_boxes(
                [boxes], inputs["original_sizes"]
            )
        batches.append(
            dict(
                input_ids=torch.tensor([ids]),
                labels=torch.tensor([labels]),
                pixel_values=inputs["pixel_values"],
                **extra,
            )
        )
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss = model(**batch, attention_mask=torch.ones_like(batch["input_ids"])).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()


def build_chat_model(path: Path) -> Path:
    """A trained-to-answer-``ANSWER`` tiny MLLM (64 px, synthetic-world tokenizer) saved under ``path``."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(model_max_length=512)
    ensure_tokens(tokenizer, "plain")
    encoder = LoclipVisionModel(tiny_config(vocab_size=len(tokenizer)).vision_config)
    model = compose(encoder, tiny_llm(tokenizer, hidden_size=32, layers=2, heads=4), tokenizer)
    processor = make_processor(model.config, tokenizer, "plain")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and the machine is shared
    try:
        train_constant_answer(model, processor)
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_encoder_model(path: Path) -> Path:
    """A random tiny loclip encoder (64 px) with the synthetic world's tokenizer, saved under ``path``."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(model_max_length=24)
    model = LoclipModel(tiny_config(vocab_size=len(tokenizer), max_text_length=24)).eval()
    model.save_pretrained(path)
    LoclipProcessor(LoclipImageProcessor(image_size=64), tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chat_model(tmp_path_factory.mktemp("chat_model"))


@pytest.fixture(scope="session")
def encoder_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_encoder_model(tmp_path_factory.mktemp("encoder_model"))


@dataclass
class Server:
    """A running demo: its URL, backend (to recompute answers in tests) and limits."""

    url: str
    backend: object
    limits: object


# Small limits so the "too large" checks need only small inputs.
TEST_LIMITS = dict(max_pixels=300 * 300, max_boxes=3, max_text_chars=80, max_labels=6, max_file_mb=1.0)


def serve(backend, name: str, limits) -> Iterator[Server]:
    """A demo of ``backend`` on a free port, launched as ``loclip-demo`` launches it (same request limits)."""
    from loclip.demo.app import build_demo, launch_options
    from loclip.demo.defaults import default_example

    demo = build_demo(backend, default_example(backend.tokenizer, backend.image_size), name, limits)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(limits)
    )
    try:
        yield Server(f"http://127.0.0.1:{port}/", backend, limits)
    finally:
        demo.close()


def _serve(model_dir: Path) -> Iterator[Server]:
    from loclip.demo.backend import load_backend
    from loclip.demo.limits import Limits

    torch.set_num_threads(1)
    limits = Limits(**TEST_LIMITS)
    yield from serve(load_backend(model_dir, limits), model_dir.name, limits)


@pytest.fixture(scope="session")
def chat_server(chat_model_dir: Path) -> Iterator[Server]:
    yield from _serve(chat_model_dir)


@pytest.fixture(scope="session")
def encoder_server(encoder_model_dir: Path) -> Iterator[Server]:
    yield from _serve(encoder_model_dir)


def endless(backend, max_new_tokens: int = 1000) -> list[int]:
    """Make ``backend``'s model answer ``max_new_tokens`` tokens, never ending early (its end token suppressed),
    and count its forward passes: the returned list grows by one per generated token."""
    backend.max_new_tokens = max_new_tokens
    backend.model.generation_config.suppress_tokens = [backend.tokenizer.eos_token_id]
    steps: list[int] = []
    backend.model.register_forward_hook(lambda *_: steps.append(1))
    return steps


@pytest.fixture(name="serve_backend")
def serve_backend_fixture():
    """``with serve_backend(backend) as server:`` a demo of a backend built in the test, on a free port."""
    return contextlib.contextmanager(lambda backend: serve(backend, "test", backend.limits))


@pytest.fixture(name="endless")
def endless_fixture():
    """``endless(backend, max_new_tokens)``: a model that never ends early; returns its step counter."""
    return endless


@pytest.fixture(name="make_image")
def make_image_fixture():
    """``scene_image(seed, (width, height))``: a noisy RGB test image with a coloured rectangle."""
    return scene_image


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    """A 96x72 PNG on disk (what a client uploads)."""
    path = tmp_path / "photo.png"
    scene_image(7, (96, 72)).save(path)
    return path
