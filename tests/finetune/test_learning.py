"""Learning proofs on the synthetic world, on a *random* encoder's trunk:
- a short run on its frozen prompter's region embeddings names the colour of the object in a ``<region>`` far
  above chance;
- a short ``box_answers="ground"`` run (prompter and box head tuned) answers grounding questions with boxes
  far more often right than the most common box is.
Exact-phrase referring and REC on a pretrained encoder are the quickstart's figures (docs), not a unit test's."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from loclip.core.image_loading import open_image
from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.encoder import boxes as bx
from loclip.encoder.box_text import render_box
from loclip.eval.mllm_referring import questions
from loclip.finetune.adapters import set_trainable
from loclip.finetune.builder import compose, make_processor, tiny_llm
from loclip.finetune.data import BatchStream, ConversationDataset
from loclip.mllm.chat import chat
from loclip.mllm.conversation import ensure_tokens
from loclip.synth import SceneConfig, build_tokenizer, read_conversations, write_split

COLOUR_CHANCE = 1 / 8


def _single_turns(records: list[dict], kind: str = "refer") -> list[dict]:
    """One single-turn record per question of ``kind`` (short sequences: the test has seconds, not minutes)."""
    return [
        {
            "image": q.image,
            "conversations": [
                {"from": "human", "value": f"<image>\n{q.question}"},
                {"from": "gpt", "value": q.answer or render_box(q.truth_box)},
            ],
            "boxes": q.boxes,
        }
        for q in questions(records, kind)
    ]


STEPS = 600
MAX_P_VALUE = 1e-4  # chance must be this unlikely to reach the accuracy seen


def chance_tail(right: int, asked: int, p: float = COLOUR_CHANCE) -> float:
    """P(at least ``right`` of ``asked`` correct by guessing with success rate ``p``), the binomial tail."""
    return sum(math.comb(asked, k) * p**k * (1 - p) ** (asked - k) for k in range(right, asked + 1))


def _world(tmp_path: Path, box_answers: str = "text"):
    """Small scenes, a random 32 px encoder (16 image tokens) and a tiny LLM: (model, processor)."""
    config = SceneConfig(image_size=32, max_objects=3)
    write_split(tmp_path, "train", 400, seed=1, config=config)
    write_split(tmp_path, "val", 60, seed=1, config=config)
    tokenizer = build_tokenizer()
    ensure_tokens(tokenizer, "plain", ground=box_answers == "ground")
    torch.manual_seed(0)
    encoder = LoclipVisionModel(tiny_config(image_size=32, patch_size=8).vision_config)
    model = compose(
        encoder,
        tiny_llm(tokenizer, hidden_size=64, layers=2),
        tokenizer,
        vision_feature_layer=-1,
        box_answers=box_answers,
    )
    return model, make_processor(model.config, tokenizer, "plain")


def _train(model, train: ConversationDataset, steps: int, lr: float = 3e-3) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _, batch in zip(range(steps), BatchStream(train, batch_size=32, seed=0)):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def test_short_run_beats_chance_on_referring(tmp_path: Path) -> None:
    model, processor = _world(tmp_path)
    set_trainable(model, stage=2, tune_encoder=False)
    train = ConversationDataset(_single_turns(read_conversations(tmp_path, "train")), processor, tmp_path / "train")
    _train(model, train, STEPS)
    asked = questions(read_conversations(tmp_path, "val"), "refer")[:120]
    right = 0
    for q in asked:
        image = open_image(tmp_path / "val" / q.image, "image")
        answer, _ = chat(model, processor, image, q.question, q.boxes, max_new_tokens=6)
        right += answer.split()[2:3] == q.answer.split()[2:3]  # "a small red circle": the colour word
    assert len(asked) >= 80
    tail = chance_tail(right, len(asked))
    print(f"colour accuracy {right / len(asked):.3f} (chance {COLOUR_CHANCE}, P(chance does as well) = {tail:.1e})")
    assert tail < MAX_P_VALUE, f"colour accuracy {right}/{len(asked)} is within reach of chance (p = {tail:.1e})"


GROUND_STEPS = 250


def test_short_ground_run_beats_the_most_common_box(tmp_path: Path) -> None:
    model, processor = _world(tmp_path, box_answers="ground")
    set_trainable(model, stage=2, tune_encoder=False, tune_ground_head=True)
    records = _single_turns(read_conversations(tmp_path, "train"), "ground")
    train = ConversationDataset(records, processor, tmp_path / "train", box_answers="ground")
    _train(model, train, GROUND_STEPS)

    # baseline: the training box that most often has IoU >= 0.5 with the other training boxes, always answered
    train_boxes = torch.tensor([q.truth_box for q in questions(read_conversations(tmp_path, "train"), "ground")])
    common = train_boxes[(bx.box_iou(train_boxes[:, None], train_boxes[None]) >= 0.5).sum(1).argmax()]
    asked = questions(read_conversations(tmp_path, "val"), "ground")[:120]
    truths = torch.tensor([q.truth_box for q in asked])
    baseline = float((bx.box_iou(common[None], truths) >= 0.5).float().mean())
    right = 0
    for q in asked:
        image = open_image(tmp_path / "val" / q.image, "image")
        _, boxes = chat(model, processor, image, q.question, max_new_tokens=4)
        if boxes:
            size = processor.image_processor.image_size
            truth = bx.model_to_pixel(torch.tensor([q.truth_box]), (image.height, image.width), size)
            right += float(bx.box_iou(torch.tensor(boxes[:1]), truth)[0]) >= 0.5
    assert len(asked) >= 80
    rate = max(baseline, 0.05)
    tail = chance_tail(right, len(asked), rate)
    print(f"REC@0.5 {right / len(asked):.3f} (most common box {baseline:.3f}, P(it does as well) = {tail:.1e})")
    assert tail < MAX_P_VALUE, f"REC@0.5 {right}/{len(asked)} is within reach of the most common box ({baseline:.3f})"
