"""Ordinal start for the box-coordinate tokens of an LLM trained from scratch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from loclip.mllm.builder import init_number_embeddings, tiny_llm
from loclip.pretrain.synth import build_tokenizer


def _rows(weight: torch.Tensor, tokenizer, values: list[int]) -> torch.Tensor:
    return weight[[tokenizer.convert_tokens_to_ids(str(v)) for v in values]]


def test_number_tokens_get_value_ordered_rows_at_the_scale_of_the_rest() -> None:
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    llm = tiny_llm(tokenizer, hidden_size=64, layers=1)
    for weight in (llm.get_input_embeddings().weight, llm.get_output_embeddings().weight):
        rows = _rows(weight, tokenizer, [500, 510, 560, 900])
        sims = F.cosine_similarity(rows[:1], rows[1:]).tolist()
        assert sims[0] > sims[1] > sims[2], sims  # nearer values, more alike
        words = weight[[tokenizer.convert_tokens_to_ids(w) for w in ("red", "circle", "the")]]
        assert 0.5 < rows.std().item() / words.std().item() < 2.0
    plain = tiny_llm(tokenizer, hidden_size=64, layers=1, ordinal_numbers=False)
    rows = _rows(plain.get_input_embeddings().weight, tokenizer, [500, 510, 900])
    assert abs(F.cosine_similarity(rows[:1], rows[1:2]).item()) < 0.5  # random rows: no order


def test_counts_the_tokens_it_sets_and_leaves_other_rows_alone() -> None:
    tokenizer = build_tokenizer()
    llm = tiny_llm(tokenizer, hidden_size=32, layers=1, ordinal_numbers=False)
    before = llm.get_input_embeddings().weight.clone()
    assert init_number_embeddings(llm, tokenizer) == 1000
    after = llm.get_input_embeddings().weight
    red = tokenizer.convert_tokens_to_ids("red")
    assert torch.equal(before[red], after[red])
    assert not torch.equal(before[tokenizer.convert_tokens_to_ids("7")], after[tokenizer.convert_tokens_to_ids("7")])
