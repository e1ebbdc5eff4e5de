"""The grouping loss (DreamLIP's SGL) learns: a few steps on a fixed batch raise the patch–phrase alignment.

Alignment is measured against the scenes' label maps, not the loss: for each object sentence, the mean cosine
of the sentence with the patches its object covers minus its mean cosine with the image's other patches.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from loclip.encoder import LoclipModel, LoclipProcessor, tiny_config
from loclip.encoder.image_processing import LoclipImageProcessor
from loclip.pretrain.losses import grouping_loss
from loclip.synth import SceneConfig, build_tokenizer, generate_scene
from loclip.synth.language import BACKGROUND_SENTENCE, OBJECT_SENTENCE, position

SIZE, PATCH, LENGTH, K = 48, 8, 16, 5


def fixed_batch() -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """24 scenes: sub-captions are their object sentences then the background sentence (K slots, masked
    beyond); returns the batch, each patch's majority label ``[B, g, g]`` and the vocabulary size."""
    scenes = [
        generate_scene("train", i, 0, SceneConfig(image_size=SIZE, min_objects=2, max_objects=4)) for i in range(24)
    ]
    tokenizer = build_tokenizer(model_max_length=LENGTH)
    processor = LoclipProcessor(LoclipImageProcessor(image_size=SIZE), tokenizer)
    subs, mask = [], []
    for scene in scenes:
        texts = [OBJECT_SENTENCE.format(phrase=o.phrase, position=position(o, SIZE)) for o in scene.objects]
        texts = (texts + [BACKGROUND_SENTENCE.format(background=scene.background)])[:K]
        mask.append([True] * len(texts) + [False] * (K - len(texts)))
        subs += texts + [""] * (K - len(texts))
    enc = processor(
        images=[s.image for s in scenes],
        text=[s.text.caption for s in scenes] + subs,
        padding="max_length",
        truncation=True,
        max_length=LENGTH,
        return_tensors="pt",
    )
    sizes = [len(scenes), len(subs)]
    ids, attention = enc["input_ids"].split(sizes), enc["attention_mask"].split(sizes)
    batch = {
        "pixel_values": enc["pixel_values"],
        "input_ids": ids[0],
        "attention_mask": attention[0],
        "sub_input_ids": ids[1].reshape(len(scenes), K, LENGTH),
        "sub_attention_mask": attention[1].reshape(len(scenes), K, LENGTH),
        "sub_mask": torch.tensor(mask),
    }
    g = SIZE // PATCH
    cells = [
        torch.from_numpy(s.labels.astype(np.int64)).reshape(g, PATCH, g, PATCH).permute(0, 2, 1, 3) for s in scenes
    ]
    labels = torch.stack([c.reshape(g, g, -1).mode(-1).values for c in cells])
    return batch, labels, len(tokenizer)


@torch.no_grad()
def alignment(model: LoclipModel, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
    """Mean over object sentences of cos(sentence, own patches) − cos(sentence, the image's other patches)."""
    vision = model.vision_model
    patches = F.normalize(vision.dense_features(vision.encode(batch["pixel_values"])).flatten(1, 2), dim=-1)
    b, k, length = batch["sub_input_ids"].shape
    texts = model.get_text_features(
        batch["sub_input_ids"].reshape(-1, length), batch["sub_attention_mask"].reshape(-1, length)
    )
    sim = patches @ F.normalize(texts, dim=-1).reshape(b, k, -1).transpose(1, 2)  # [B, N, K]
    flat, margins = labels.flatten(1), []
    for i in range(b):
        for obj in range(int(batch["sub_mask"][i].sum()) - 1):  # the last valid slot is the background
            own = flat[i] == obj + 1
            if own.any():
                margins.append(sim[i, own, obj].mean() - sim[i, ~own, obj].mean())
    return torch.stack(margins).mean().item()


def train_grouping(model: LoclipModel, batch: dict[str, torch.Tensor], steps: int) -> list[float]:
    """``steps`` of the grouping loss alone (batch negatives, as ``dreamlip_sgl``) on the vision side, the text
    tower frozen (so that the phrases stay put and only the patches can move); returns the loss per step."""
    for p in [*model.text_model.parameters(), *model.text_projection.parameters()]:
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3, weight_decay=0.0)
    valid, b, k = batch["sub_mask"], *batch["sub_mask"].shape
    losses = []
    for _ in range(steps):
        patches = model.vision_model.dense_features(model.vision_model.encode(batch["pixel_values"]))
        texts = model.get_text_features(batch["sub_input_ids"][valid], batch["sub_attention_mask"][valid])
        sub = texts.new_zeros(b, k, texts.shape[-1]).index_put((valid.nonzero(as_tuple=True)), texts)
        loss = grouping_loss(patches, sub, valid, model.logit_scale, delta=0.5, negatives="batch")["grouping"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_grouping_loss_raises_patch_phrase_alignment_on_a_fixed_batch() -> None:
    batch, labels, vocab = fixed_batch()
    torch.manual_seed(0)
    model = LoclipModel(tiny_config(vocab_size=vocab, image_size=SIZE, patch_size=PATCH, max_text_length=LENGTH))
    start = alignment(model, batch, labels)
    losses = train_grouping(model, batch, steps=60)
    end = alignment(model, batch, labels)
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5]), losses
    # Measured 0.04 -> 0.14: each sentence is now closer to its own object's patches than to the rest.
    assert end > start + 0.05, (start, end)
