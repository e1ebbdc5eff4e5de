"""box_answers="ground": box answers as <ground> tokens that the encoder's grounding head draws."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_mllm import GROUND_TURNS as TURNS

from loclip.encoder.box_text import parse_boxes
from loclip.encoder.modeling import VisionEncoding
from loclip.mllm import LoclipLlavaForConditionalGeneration, LoclipLlavaProcessor, chat
from loclip.mllm.conversation import (
    GROUND_TOKEN,
    IGNORE_INDEX,
    encode_conversation,
    encode_prompt,
    ground_answers,
    token_id,
)
from loclip.pretrain.losses.cloc import dense_grounding_loss


def test_ground_answers_swap_box_text_in_gpt_turns_only() -> None:
    human = {"from": "human", "value": "is it at [1, 2, 3, 4]?"}
    turns, boxes = ground_answers([human, *TURNS[1:]])
    assert turns[0] == human  # questions keep their text
    assert turns[1]["value"] == GROUND_TOKEN
    assert turns[3]["value"] == f"a red square, also at {GROUND_TOKEN} and [1,2,3]"
    assert boxes == parse_boxes("[100, 200, 300, 400] [5, 6, 7, 8]")


def test_ground_token_is_one_target_token(tiny_ground) -> None:
    _, processor = tiny_ground
    tok = processor.tokenizer
    turns, _ = ground_answers(TURNS)
    ids, labels = encode_conversation(tok, turns, processor.num_image_tokens, "plain")
    ground = token_id(tok, GROUND_TOKEN)
    where = [i for i, t in enumerate(ids) if t == ground]
    assert len(where) == 2
    assert all(labels[i] == ground for i in where)  # the model learns to write it
    assert labels[where[0] - 1] == IGNORE_INDEX  # and it starts the first answer


def test_ground_loss_matches_a_reference_built_by_hand(tiny_ground, ground_batch) -> None:
    model, _ = tiny_ground
    batch = ground_batch
    out = model(**batch)
    plain = model(**{k: v for k, v in batch.items() if not k.startswith("ground_")})
    torch.testing.assert_close(out.logits, plain.logits)  # the head does not change what the LLM says
    torch.testing.assert_close(out.loss, out.lm_loss + out.ground_loss)
    torch.testing.assert_close(out.lm_loss, plain.loss)

    # reference: hidden states of each <ground> token, one phrase at a time, through projector and head
    ground_id = model.config.ground_token_index
    with torch.no_grad():
        enc = model.model.vision_tower.encode(batch["pixel_values"], output_hidden_states=True)
        hidden = model.model(
            **{k: batch[k] for k in ("input_ids", "pixel_values", "attention_mask", "boxes", "box_mask")}
        ).last_hidden_state
    logits, cell_boxes, targets = [], [], []
    for b in range(hidden.shape[0]):
        for g, position in enumerate((batch["input_ids"][b] == ground_id).nonzero()[:, 0].tolist()):
            phrase = model.model.ground_projector(hidden[b, position])
            one = model.model.vision_tower.grounding(one_image(enc, b), phrase[None, None])
            logits.append(one.cell_logits[0, 0])
            cell_boxes.append(one.cell_boxes[0, 0])
            targets.append(batch["ground_boxes"][b, g])
    terms = dense_grounding_loss(
        torch.stack(logits)[None],
        torch.stack(cell_boxes)[None],
        torch.stack(targets)[None],
        torch.ones(1, len(targets), dtype=torch.bool),
        enc.grid,
    )
    torch.testing.assert_close(out.ground_loss, sum(terms.values()), rtol=1e-4, atol=1e-5)


def one_image(enc: VisionEncoding, b: int) -> VisionEncoding:
    """The encoding of image ``b`` alone, with an empty per-pass cache."""
    return VisionEncoding(enc.image_embeds[b : b + 1], enc.patch_tokens[b : b + 1], enc.grid, enc.trunk_output)


def test_count_mismatch_and_text_models_are_named(tiny, tiny_ground, ground_batch) -> None:
    model, _ = tiny_ground
    batch = ground_batch
    with pytest.raises(ValueError, match=r"^input_ids\[0\] has 2 <ground> placeholders but 1 boxes: give one box per"):
        model(**{**batch, "ground_mask": batch["ground_mask"] & torch.tensor([True, False])})
    text_model, _ = tiny
    with pytest.raises(ValueError, match="box_answers='text'"):
        text_model(**batch)


def test_chat_writes_the_heads_box_for_each_ground_token(tiny_ground, image, monkeypatch) -> None:
    model, processor = tiny_ground
    tok = processor.tokenizer
    ground = model.config.ground_token_index
    red, blue = (tok(words, add_special_tokens=False)["input_ids"] for words in (" a red square", " a blue ring"))
    tail = [*red, ground, *blue, ground, tok.eos_token_id]
    monkeypatch.setattr(model, "generate", lambda input_ids, **kw: torch.cat([input_ids, torch.tensor([tail])], 1))
    answer, pixels = chat(model, processor, image, "Where is the red square?")

    inputs = processor(images=image, text="<image>\nx")
    assert answer.startswith("a red square [") and "] a blue ring [" in answer
    drawn = parse_boxes(answer)
    assert len(drawn) == 2 and len(pixels) == 2
    # the written boxes are the head's boxes (to the 1/1000 bin)
    prompt = encode_prompt(
        tok,
        [{"role": "user", "content": "<image>\nWhere is the red square?"}],
        processor.num_image_tokens,
        processor.template,
    )
    full = torch.tensor([prompt + tail])
    (head,) = model.ground_boxes(full, inputs["pixel_values"])
    assert torch.allclose(torch.tensor(drawn), head, atol=1e-3)


def test_save_load_keeps_the_ground_projector(tiny_ground, image, tmp_path: Path) -> None:
    model, processor = tiny_ground
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = LoclipLlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    loaded_processor = LoclipLlavaProcessor.from_pretrained(tmp_path)
    assert loaded.config.box_answers == "ground"
    ids = torch.tensor(
        [
            [
                *processor(images=image, text="<image> x")["input_ids"][0].tolist(),
                token_id(loaded_processor.tokenizer, GROUND_TOKEN),
            ]
        ]
    )
    pixels = processor(images=image, text="<image>")["pixel_values"]
    torch.testing.assert_close(loaded.ground_boxes(ids, pixels)[0], model.ground_boxes(ids, pixels)[0], atol=0, rtol=0)
