"""Shared fixtures: tiny tokenizers and configs built here, never downloaded."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

WORDS = (
    "a the small large red green blue yellow purple orange white black circle square triangle star "
    "cross hexagon is left of right above below on background grey what where in and"
).split()


def make_tokenizer(words: list[str] = WORDS, max_length: int = 16) -> PreTrainedTokenizerFast:
    """A word-level tokenizer that appends ``<eos>`` (CLIP pools on the first eos)."""
    specials = ["<pad>", "<unk>", "<bos>", "<eos>", "<image>", "<region>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=max_length,
        extra_special_tokens={"image_token": "<image>", "region_token": "<region>"},
    )


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
