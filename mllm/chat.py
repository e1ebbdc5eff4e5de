"""``chat()``: one question about one image (optionally about boxes) → the answer and its boxes in pixels."""

from __future__ import annotations

from typing import Any

import torch

from loclip.encoder.box_text import fill_placeholders, parse_boxes

from .conversation import IMAGE_TOKEN, REGION_TOKEN, encode_prompt
from .processing import LoclipLlavaProcessor


@torch.no_grad()
def chat(
    model: Any,
    processor: LoclipLlavaProcessor,
    image: Any,
    question: str,
    boxes: list[list[float]] | None = None,
    max_new_tokens: int = 64,
) -> tuple[str, list[list[float]]]:
    """Ask ``question`` about ``image`` with greedy decoding.

    Args:
        model: a ``LoclipLlavaForConditionalGeneration`` (or a peft model wrapping one).
        processor: its ``LoclipLlavaProcessor``.
        image: a PIL image, array or path.
        question: text; ``<image>`` is put in front if absent; one ``<region>`` per box.
        boxes: pixel xyxy boxes of ``image`` for the ``<region>`` placeholders, in order.
    Returns:
        ``(answer_text, answer_boxes)``: every ``[x1, y1, x2, y2]`` in the answer, mapped to original-image pixels.
        A ``box_answers="ground"`` model writes ``<ground>`` tokens; each becomes the box its grounding head
        draws, written as box text, so the answer reads the same for both kinds of model.
    """
    if IMAGE_TOKEN not in question:
        question = f"{IMAGE_TOKEN}\n{question}"
    boxes = list(boxes or [])
    if question.count(REGION_TOKEN) != len(boxes):
        raise ValueError(f"question has {question.count(REGION_TOKEN)} <region> placeholders but {len(boxes)} boxes "
                         "were given")
    inputs = processor(images=image, boxes=[boxes] if boxes else None, return_original_sizes=True)
    tokenizer = processor.tokenizer
    prompt = encode_prompt(tokenizer, [{"role": "user", "content": question}], processor.num_image_tokens,
                           processor.template)
    device = model.device
    input_ids = torch.tensor([prompt], device=device)
    extra = {"boxes": inputs["boxes"].to(device), "box_mask": inputs["box_mask"].to(device)} if boxes else {}
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        pixel_values=inputs["pixel_values"].to(device, model.dtype),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    answer_ids = out[0, len(prompt):]
    ground_id = getattr(model.config, "ground_token_index", None)
    if getattr(model.config, "box_answers", "text") == "ground" and bool((answer_ids == ground_id).any()):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps it
        (drawn,) = base.ground_boxes(out, inputs["pixel_values"].to(device, model.dtype), torch.ones_like(out),
                                     **extra)
        cuts = [-1, *(answer_ids == ground_id).nonzero()[:, 0].tolist(), len(answer_ids)]
        pieces = [tokenizer.decode(answer_ids[a + 1 : b], skip_special_tokens=True) for a, b in zip(cuts, cuts[1:])]
        answer = fill_placeholders(pieces, drawn.float().clamp(0.0, 1.0))
    else:
        answer = tokenizer.decode(answer_ids, skip_special_tokens=True).strip()
    found = torch.tensor(parse_boxes(answer), dtype=torch.float32).reshape(-1, 4)
    (pixels,) = processor.post_process_boxes([found], inputs["original_sizes"])
    return answer, pixels.tolist()
