"""Learning proof on the synthetic world: a short run on a *random, frozen* encoder's prompter embeddings
names the colour of the object in a ``<region>`` far above chance. Exact-phrase referring needs a pretrained encoder: that is
the quickstart's figure (docs), not a unit test's."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from loclip.encoder.image_loading import open_image

from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.mllm.adapters import set_trainable
from loclip.mllm.builder import compose, make_processor, tiny_llm
from loclip.mllm.conversation import ensure_tokens
from loclip.mllm.data import BatchStream, ConversationDataset
from loclip.mllm.chat import chat
from loclip.mllm.evaluate import questions
from loclip.pretrain.synth import SceneConfig, build_tokenizer, read_conversations, write_split

COLOUR_CHANCE = 1 / 8


def _referring_only(records: list[dict]) -> list[dict]:
    """One single-turn record per referring question (short sequences: the test has seconds, not minutes)."""
    return [
        {"image": q.image, "conversations": [{"from": "human", "value": f"<image>\n{q.question}"},
                                             {"from": "gpt", "value": q.answer}], "boxes": q.boxes}
        for q in questions(records, "refer")
    ]


STEPS = 600
MAX_P_VALUE = 1e-4  # chance must be this unlikely to reach the accuracy seen


def chance_tail(right: int, asked: int, p: float = COLOUR_CHANCE) -> float:
    """P(at least ``right`` of ``asked`` correct by guessing with success rate ``p``), the binomial tail."""
    return sum(math.comb(asked, k) * p**k * (1 - p) ** (asked - k) for k in range(right, asked + 1))


def test_short_run_beats_chance_on_referring(tmp_path: Path) -> None:
    config = SceneConfig(image_size=32, max_objects=3)
    write_split(tmp_path, "train", 400, seed=1, config=config)
    write_split(tmp_path, "val", 60, seed=1, config=config)
    tokenizer = build_tokenizer()
    ensure_tokens(tokenizer, "plain")
    torch.manual_seed(0)
    encoder = LoclipVisionModel(tiny_config(image_size=32, patch_size=8).vision_config)  # 16 image tokens
    model = compose(encoder, tiny_llm(tokenizer, hidden_size=64, layers=2), tokenizer, vision_feature_layer=-1)
    processor = make_processor(model.config, tokenizer, "plain")
    set_trainable(model, stage=2, tune_encoder=False)

    train = ConversationDataset(_referring_only(read_conversations(tmp_path, "train")), processor, tmp_path / "train")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _, batch in zip(range(STEPS), BatchStream(train, batch_size=32, seed=0)):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
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
