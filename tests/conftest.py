"""Shared fixtures: tiny tokenizers and configs built here, never downloaded, and synthetic-world scenes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from transformers import PreTrainedTokenizerFast

from loclip.synth import Scene, SceneConfig, generate_scene, write_split
from loclip.synth.tokenizer import SPECIAL_TOKENS, word_tokenizer

# Property-based tests (the fuzz tests): CI runs a fixed, derandomised set of examples, so a failure reproduces
# from the log; LOCLIP_FUZZ=long explores far more, with fresh randomness (docs/reliability.md, Fuzzing).
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=150,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("LOCLIP_FUZZ", "ci"))

WORDS = (
    "a the small large red green blue yellow purple orange white black circle square triangle star "
    "cross hexagon is left of right above below on background grey what where in and"
).split()


def make_tokenizer(words: list[str] = WORDS, max_length: int = 16) -> PreTrainedTokenizerFast:
    """A small word-level tokenizer (the world's builder over ``words``) that appends ``<eos>`` (CLIP pools on
    the first eos)."""
    return word_tokenizer(sorted(set(words)), SPECIAL_TOKENS, max_length)


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)


SEED = 7
SMALL = SceneConfig(image_size=48, max_objects=6)


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    """300 scenes across all splits, at the default 64 px."""
    counts = {"train": 150, "val": 25, "test": 25, "novel": 100}
    return [generate_scene(split, i, SEED) for split, n in counts.items() for i in range(n)]


@pytest.fixture(scope="session")
def synth_seed() -> int:
    return SEED


@pytest.fixture(scope="session")
def synth_config() -> SceneConfig:
    return SMALL


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with 23 train scenes (shards of 5) and 6 novel scenes, at 48 px."""
    out = tmp_path_factory.mktemp("synth")
    write_split(out, "train", 23, SEED, SMALL, shard_size=5)
    write_split(out, "novel", 6, SEED, SMALL, shard_size=5)
    return out
