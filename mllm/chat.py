"""``chat()``: a question about an image (optionally about boxes, optionally after earlier turns of the same
conversation) → the answer and its boxes in pixels; ``AnswerStreamer`` shows the answer while it is written.

A box with no area at the resolution of box text (``found_boxes``: x1 = x2 or y1 = y2 in 0–999 integers) is
what a model draws for something it cannot find: ``chat`` writes it as ``NOT_FOUND`` and returns no box for it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from loclip.encoder.box_text import boxes_to_placeholder, fill_placeholders, parse_boxes, render_box
from loclip.encoder.boxes import pixel_to_model
from loclip.encoder.modeling import found_boxes

from .conversation import GROUND_TOKEN, IMAGE_TOKEN, encode_prompt
from .processing import LoclipLlavaProcessor
from .prompt import ChatPrompt, Turn

GROUND_MARK = "[…]"  # how a streamed <ground> token shows until the grounding head has drawn its box
NOT_FOUND = "(not found)"  # written where a box answer has no area: the model found nothing there
_SLOT = "\x00box\x00"  # stands for a box while an answer is rewritten (decoded text never holds it: checked)


class PromptTooLong(ValueError):
    """The prompt (image tokens, earlier turns and the question) is over ``chat``'s ``max_prompt_tokens``."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"the conversation would be {tokens:,} tokens; the limit is {limit:,}")
        self.tokens, self.limit = tokens, limit


class StopWhenSet(StoppingCriteria):
    """Ends ``generate`` at its next token once ``event`` is set (whoever asked has gone away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def to_prompt_messages(prompt: ChatPrompt, ground: bool) -> list[dict[str, str]]:
    """A checked prompt → chat messages: its earlier turns, then its question. The image goes in front of the first
    question unless that question places it.

    A grounding-token model (``ground``) wrote its boxes as ``<ground>`` tokens, so the box texts of earlier
    answers become ``<ground>`` again, as in training (``conversation.ground_answers``).
    """
    messages = []
    for i, text in enumerate([t.question for t in prompt.history] + [prompt.question]):
        if i == 0 and IMAGE_TOKEN not in text:
            text = f"{IMAGE_TOKEN}\n{text}"
        messages.append({"role": "user", "content": text})
        if i < len(prompt.history):
            answer = prompt.history[i].answer
            messages.append(
                {"role": "assistant", "content": boxes_to_placeholder(answer, GROUND_TOKEN)[0] if ground else answer}
            )
    return messages


@torch.no_grad()
def chat(
    model: Any,
    processor: LoclipLlavaProcessor,
    image: Any,
    question: str | ChatPrompt,
    boxes: list[list[float]] | None = None,
    max_new_tokens: int = 64,
    history: Sequence[Turn] = (),
    streamer: BaseStreamer | None = None,
    max_prompt_tokens: int | None = None,
    stop: threading.Event | None = None,
) -> tuple[str, list[list[float]]]:
    """Ask ``question`` about ``image`` with greedy decoding.

    Args:
        model: a ``LoclipLlavaForConditionalGeneration`` (or a peft model wrapping one).
        processor: its ``LoclipLlavaProcessor``.
        image: a PIL image, array or path.
        question: text (``<image>`` is put in front of the first question if absent; one ``<region>`` per box),
            or a ``ChatPrompt`` already built (and checked) for this image, holding its boxes and history.
        boxes: pixel xyxy boxes of ``image`` for the ``<region>`` placeholders, in order (text questions only).
        history: earlier turns of this conversation about the same image, oldest first (text questions only).
        streamer: handed to ``generate`` (e.g. ``AnswerStreamer``) to see the answer as it is written.
        max_prompt_tokens: refuse (``PromptTooLong``) a prompt longer than this, image tokens included.
        stop: once set (from another thread), generation ends at the next token; the answer so far is returned.
    Returns:
        ``(answer_text, answer_boxes)``: every ``[x1, y1, x2, y2]`` in the answer, mapped to original-image pixels.
        A ``box_answers="ground"`` model writes ``<ground>`` tokens; each becomes the box its grounding head
        draws, written as box text, so the answer reads the same for both kinds of model. A box with no area
        is written ``NOT_FOUND`` and left out of ``answer_boxes`` (module docstring).
    Raises:
        ValueError: from ``ChatPrompt.build`` for a text question (naming ``question``, ``boxes[k]`` or
        ``history[i]...``): a ``<region>`` count that differs from its boxes, a box off the image, a special token.
    """
    ground = getattr(model.config, "box_answers", "text") == "ground"
    tokenizer = processor.tokenizer
    inputs = processor(images=image, return_original_sizes=True)
    size = tuple(int(v) for v in inputs["original_sizes"][0])
    if isinstance(question, ChatPrompt):
        if boxes or history:
            raise ValueError("a ChatPrompt holds its boxes and history: give them to ChatPrompt.build, not to chat")
        if question.size != size:
            raise ValueError(
                f"the ChatPrompt was built for an image of (height, width) = {question.size}, but this image is {size}"
            )
        prompt = question
    else:
        prompt = ChatPrompt.build(processor, size, question, list(boxes or []), list(history))
    ids = encode_prompt(tokenizer, to_prompt_messages(prompt, ground), processor.num_image_tokens, processor.template)
    if max_prompt_tokens is not None and len(ids) > max_prompt_tokens:
        raise PromptTooLong(len(ids), max_prompt_tokens)
    device = model.device
    pixel_values = inputs["pixel_values"].to(device, model.dtype)
    all_boxes = prompt.all_boxes()
    extra = {}
    if all_boxes:  # checked and clipped by the prompt: only mapped into the model frame here
        mapped = pixel_to_model(all_boxes, size, processor.image_processor.image_size)
        extra = {
            "boxes": mapped[None].to(device),
            "box_mask": torch.ones(1, len(all_boxes), dtype=torch.bool, device=device),
        }
    input_ids = torch.tensor([ids], device=device)
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        pixel_values=pixel_values,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList([StopWhenSet(stop)] if stop is not None else []),
        **extra,
    )
    answer_ids = out[0, len(ids) :]
    ground_id = getattr(model.config, "ground_token_index", None)
    new_grounds = int((answer_ids == ground_id).sum()) if ground else 0
    if new_grounds:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps it
        (drawn,) = base.ground_boxes(out, pixel_values, torch.ones_like(out), **extra)
        drawn = drawn[-new_grounds:]  # the earlier answers' <ground> tokens come first
        cuts = [-1, *(answer_ids == ground_id).nonzero()[:, 0].tolist(), len(answer_ids)]
        pieces = [tokenizer.decode(answer_ids[a + 1 : b], skip_special_tokens=True) for a, b in zip(cuts, cuts[1:])]
        answer = fill_placeholders(pieces, drawn.float().clamp(0.0, 1.0))
    else:
        answer = tokenizer.decode(answer_ids, skip_special_tokens=True).strip()
    answer = mark_not_found(answer)
    found = torch.tensor(parse_boxes(answer), dtype=torch.float32).reshape(-1, 4)
    (pixels,) = processor.post_process_boxes([found], inputs["original_sizes"])
    return answer, pixels.tolist()


def mark_not_found(answer: str) -> str:
    """``answer`` with each box text that has no area (``found_boxes``) written as ``NOT_FOUND``; an answer whose
    boxes all have an area comes back as it is."""
    text, boxes = boxes_to_placeholder(answer, _SLOT)
    if not boxes or _SLOT in answer:
        return answer
    found = found_boxes(torch.tensor(boxes)).tolist()
    if all(found):
        return answer
    pieces = text.split(_SLOT)
    out = pieces[0]
    for box, ok, piece in zip(boxes, found, pieces[1:]):
        out += (render_box(box) if ok else NOT_FOUND) + piece
    return out


class AnswerStreamer(BaseStreamer):
    """A ``generate`` streamer that collects the answer's tokens; iterate it (from another thread than the one
    generating) for the answer text so far after each new token. ``<ground>`` tokens show as ``GROUND_MARK``
    until ``chat`` returns the drawn boxes. The prompt (``generate``'s first ``put``) is not part of the answer.

    ``timeout``: seconds to wait for the next token before ``queue.Empty`` is raised (``None``: no limit).
    """

    def __init__(self, tokenizer: Any, ground_token_id: int | None = None, timeout: float | None = None) -> None:
        self.tokenizer = tokenizer
        self.ground_token_id = ground_token_id
        self.timeout = timeout
        self._ids: list[int] = []
        self._prompt_seen = False
        self._queue: queue.Queue[str | None] = queue.Queue()

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self._ids += value.reshape(-1).tolist()
        self._queue.put(self.text())

    def end(self) -> None:
        self._queue.put(None)

    def text(self) -> str:
        """The answer so far."""
        pieces, current = [], []
        for i in self._ids:
            if i == self.ground_token_id:
                pieces.append(current)
                current = []
            else:
                current.append(i)
        pieces.append(current)
        decoded = [self.tokenizer.decode(p, skip_special_tokens=True) for p in pieces]
        return GROUND_MARK.join(decoded).strip()

    def __iter__(self) -> Iterator[str]:
        while (text := self._queue.get(timeout=self.timeout)) is not None:
            yield text
