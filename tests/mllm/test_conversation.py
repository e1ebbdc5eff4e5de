"""The conversation format: token-by-token label masks, prompts as prefixes, chat templates, the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from loclip.encoder import boxes
from loclip.mllm.conversation import IGNORE_INDEX, encode_conversation, encode_prompt, to_messages
from loclip.mllm.data import BatchStream, ConversationDataset

TWO_TURNS = [
    {"from": "human", "value": "<image>\nWhat is in <region>?"},
    {"from": "gpt", "value": "a small red circle"},
    {"from": "human", "value": "Where is the circle?"},
    {"from": "gpt", "value": "[1, 2, 3, 4]"},
]


def test_label_mask_token_by_token_on_two_turns(tiny) -> None:
    _, processor = tiny
    tok = processor.tokenizer
    ids, labels = encode_conversation(tok, TWO_TURNS, num_image_tokens=3, template="plain")
    expected = (
        [("<bos>", False), ("USER:", False), *[("<image>", False)] * 3,
         *[(w, False) for w in ("what", "is", "in", "<region>", "?")], ("ASSISTANT:", False),
         *[(w, True) for w in ("a", "small", "red", "circle")], ("<eos>", True),
         ("USER:", False), *[(w, False) for w in ("where", "is", "the", "circle", "?")], ("ASSISTANT:", False),
         *[(w, True) for w in ("[", "1", ",", "2", ",", "3", ",", "4", "]")], ("<eos>", True)]
    )  # fmt: skip
    assert tok.convert_ids_to_tokens(ids) == [t for t, _ in expected]
    assert labels == [i if target else IGNORE_INDEX for i, (_, target) in zip(ids, expected)]


def test_generation_prompt_is_a_prefix_of_the_training_ids(tiny) -> None:
    _, processor = tiny
    tok = processor.tokenizer
    ids, labels = encode_conversation(tok, TWO_TURNS, 3, "plain")
    prompt = encode_prompt(tok, to_messages(TWO_TURNS)[:1], 3, "plain")
    assert ids[: len(prompt)] == prompt and labels[len(prompt)] != IGNORE_INDEX


def test_chat_template_labels_cover_the_assistant_pieces_only(tiny) -> None:
    _, processor = tiny
    tok = processor.tokenizer
    tok.chat_template = (
        "{% for m in messages %}{{ '<bos>' if loop.first else '' }} {{ m['role'] }} {{ m['content'] }}"
        "{{ ' <eos>' if m['role'] == 'assistant' else '' }}{% endfor %}"
        "{% if add_generation_prompt %} assistant{% endif %}"
    )
    # the template's role words are not in this closed vocabulary: they become <unk>, which is fine here
    ids, labels = encode_conversation(tok, TWO_TURNS, 2, "chat")
    targets = tok.convert_ids_to_tokens([i for i, l in zip(ids, labels) if l != IGNORE_INDEX])
    assert targets == ["a", "small", "red", "circle", "<eos>", "[", "1", ",", "2", ",", "3", ",", "4", "]", "<eos>"]
    with pytest.raises(ValueError, match="no chat_template"):
        tok.chat_template = None
        encode_conversation(tok, TWO_TURNS, 2, "chat")


def test_turns_must_alternate() -> None:
    with pytest.raises(ValueError, match=r"conversations\[1\] must be a gpt turn"):
        to_messages([{"from": "human", "value": "a"}, {"from": "human", "value": "b"}])


def test_dataset_batches_and_skips(tiny, tmp_path: Path) -> None:
    _, processor = tiny
    Image.new("RGB", (40, 60), (200, 0, 0)).save(tmp_path / "a.png")
    good = {"image": "a.png", "conversations": TWO_TURNS, "boxes": [[5, 5, 20, 30]]}
    records = [good, good, {**good, "boxes": []}, {"conversations": TWO_TURNS}, {**good, "conversations": []}]
    (tmp_path / "data.json").write_text(json.dumps(records))
    dataset = ConversationDataset(tmp_path / "data.json", processor, max_length=512)
    assert len(dataset) == 2
    assert dict(dataset.skip_counts) == {"region_count": 1, "no_image": 1, "bad_conversation": 1}
    batch = next(iter(BatchStream(dataset, batch_size=2, seed=0)))
    assert batch["pixel_values"].shape == (2, 3, 64, 64) and batch["box_mask"].all()
    # the same geometry as the encoder's box conventions (letterbox of a 40x60 image into 64 px)
    expected = boxes.pixel_to_model(torch.tensor([[5.0, 5, 20, 30]]), (60, 40), 64)[0].float()
    torch.testing.assert_close(batch["boxes"][0, 0], expected)
