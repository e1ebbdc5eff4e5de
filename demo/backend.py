"""The model side of the demo: load a checkpoint, then answer with plain Python values.

Nothing here knows about gradio. Inputs are PIL images, lists of pixel ``[x1, y1, x2, y2]`` boxes and strings;
outputs are dataclasses of strings, floats and lists. A lock serialises model calls, so one CPU model can serve
several gradio workers without two forward passes fighting over the same threads. A chat answer stops at its
next token when its request goes away (``ask_stream``'s ``stop``), so a cancelled request does not hold the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict, get_args

import torch
from PIL import Image

from loclip.core.messages import shown
from loclip.encoder.boxes import pixel_box_in_image
from loclip.mllm.chat import PromptTooLong
from loclip.mllm.conversation import IMAGE_TOKEN as IMAGE
from loclip.mllm.conversation import REGION_TOKEN as REGION
from loclip.mllm.prompt import ChatPrompt, Turn

from .limits import DemoInputError, Limits, check_boxes, check_text

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

UnusedBoxes = Literal["append", "ignore"]  # what happens to drawn boxes the question has no <region> for
CHAT_MODEL_TYPE = "loclip_llava"
ENCODER_MODEL_TYPE = "loclip"


def model_type(path: str | os.PathLike) -> str:
    """``model_type`` of the checkpoint directory ``path``, one the demo serves, after ``loclip.core.model_dir``
    checked its config.json and safetensors headers (``ValueError`` naming ``--model`` otherwise)."""
    from loclip.core.model_dir import check_model_dir

    return check_model_dir(
        path,
        {
            CHAT_MODEL_TYPE: "chat mode, an MLLM from loclip-finetune",
            ENCODER_MODEL_TYPE: "encoder mode, from loclip-pretrain",
        },
        "--model",
    )


def with_regions(question: str, num_boxes: int) -> str:
    """Put one ``<region>`` per box into ``question``: the k-th ``<region>`` stands for the k-th box drawn.

    Placeholders the question already has are used first, in order; missing ones are appended at the end,
    separated by spaces. (More placeholders than boxes is the prompt's to refuse: ``ChatPrompt.build``.)
    """
    if IMAGE in question:
        raise DemoInputError(f"question must not contain {IMAGE}: the image is placed in front of it for you")
    return " ".join([question, *[REGION] * max(num_boxes - question.count(REGION), 0)])


@dataclass(frozen=True)
class ChatAnswer:
    """One chat turn: the question as the model saw it, the boxes asked about and the answer with its boxes."""

    question: str
    question_boxes: list[list[float]]
    answer: str
    answer_boxes: list[list[float]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, boxes in original-image pixels rounded to 0.01."""
        return {
            "answer": self.answer,
            "answer_boxes": round_boxes(self.answer_boxes),
            "question": self.question,
            "question_boxes": round_boxes(self.question_boxes),
        }


@dataclass(frozen=True)
class RegionRanking:
    """One box and the candidate labels ranked by how well they match it (scores sum to 1)."""

    box: list[float]
    ranking: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"box": round_boxes([self.box])[0], "ranking": [{"label": lab, "score": s} for lab, s in self.ranking]}


class AskOptions(TypedDict, total=False):
    """``ask_stream``'s options after the boxes (see it for what each does), which ``ask`` passes on as given."""

    history: Sequence[ChatAnswer]
    unused_boxes: UnusedBoxes
    stop: threading.Event | None


def round_boxes(boxes: list[list[float]], digits: int = 2) -> list[list[float]]:
    """Boxes rounded for display and JSON (model outputs carry float noise far below a pixel)."""
    return [[round(float(v), digits) for v in box] for box in boxes]


class _ModelBackend:
    """A model in eval mode, its processor, the limits and the lock that serialises model calls."""

    mode = ""

    def __init__(self, model: Any, processor: Any, limits: Limits | None = None) -> None:
        self.model = model.eval()
        self.processor = processor
        self.limits = limits or Limits()
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def _acquire(self, stop: threading.Event) -> bool:
        """Take the model lock, unless ``stop`` is set first (a request cancelled while it waited): False then."""
        while not self._lock.acquire(timeout=0.05):
            if stop.is_set():
                return False
        if stop.is_set():
            self._lock.release()
            return False
        return True

    @property
    def image_size(self) -> int:
        return int(self.processor.image_processor.image_size)


class ChatBackend(_ModelBackend):
    """A ``LoclipLlavaForConditionalGeneration`` and its processor behind ``ask`` / ``ask_stream``: one
    conversation per call, its earlier turns (``history``) sent along, as the model has no memory of its own."""

    mode = "chat"

    def __init__(self, model: Any, processor: Any, limits: Limits | None = None, max_new_tokens: int = 64) -> None:
        super().__init__(model, processor, limits)
        self.max_new_tokens = max_new_tokens

    def place_boxes(
        self, question: str, boxes: list[list[float]], unused_boxes: UnusedBoxes = "append"
    ) -> tuple[str, list[list[float]]]:
        """(the question as the model will see it, the boxes its ``<region>``s stand for): the question's own
        ``<region>``s take the first boxes; the rest are appended as ``<region>``s or dropped (``unused_boxes``)."""
        if unused_boxes not in get_args(UnusedBoxes):
            raise DemoInputError(f"unused_boxes must be one of {get_args(UnusedBoxes)}, got {shown(unused_boxes)}")
        question = check_text(question, "question", self.limits)
        if unused_boxes == "ignore":
            boxes = boxes[: question.count(REGION)]
        return with_regions(question, len(boxes)), boxes

    def prompt(
        self,
        size: tuple[int, int],
        question: str,
        boxes: list[list[float]],
        history: Sequence[ChatAnswer] = (),
        unused_boxes: UnusedBoxes = "append",
    ) -> ChatPrompt:
        """The request as the ``ChatPrompt`` that ``chat`` asks, built (and so checked) once for an image of
        ``size=(height, width)``: the demo's limits here (turns, boxes, text), the prompt's own rules in
        ``ChatPrompt.build`` (one box per ``<region>``, boxes on the image, no special tokens)."""
        if len(history) + 1 > self.limits.max_turns:
            raise DemoInputError(
                f"this would be question {len(history) + 1} of the conversation; the limit is "
                f"{self.limits.max_turns}: start over"
            )
        question, boxes = self.place_boxes(question, check_boxes(list(boxes), self.limits), unused_boxes)
        turns = [
            Turn(t.question, t.answer, check_boxes(list(t.question_boxes), self.limits, f"history[{i}].question_boxes"))
            for i, t in enumerate(history)
        ]
        return ChatPrompt.build(self.processor, size, question, boxes, turns)

    def ask_stream(
        self,
        image: Image.Image,
        question: str | ChatPrompt,
        boxes: list[list[float]] | None = None,
        history: Sequence[ChatAnswer] = (),
        unused_boxes: UnusedBoxes = "append",
        stop: threading.Event | None = None,
    ) -> Iterator[str | ChatAnswer]:
        """Answer ``question`` about ``image`` after the conversation's earlier turns ``history``: yields the
        answer text so far after each token, then the finished ``ChatAnswer``. ``boxes`` (pixels, drawing
        order) fill the question's ``<region>``s; the boxes left over are appended as ``<region>``s
        (``unused_boxes="append"``) or dropped (``"ignore"``). ``question`` may be the request's ``prompt(...)``
        already built (its boxes and history inside it).

        Generation stops at its next token when ``stop`` is set (from another thread) or when this generator is
        closed before it ends (gradio closes it when its request is cancelled); a request still waiting for the
        model then never runs it. A prompt over ``limits.max_prompt_tokens`` is refused.
        """
        from loclip.mllm.chat import AnswerStreamer, chat

        if isinstance(question, ChatPrompt):
            if boxes or history:
                raise ValueError("a ChatPrompt holds its boxes and history: build it with them (prompt(...))")
            prompt = question
        else:
            prompt = self.prompt((image.height, image.width), question, list(boxes or []), history, unused_boxes)
        stop = stop or threading.Event()
        streamer = AnswerStreamer(self.tokenizer, getattr(self.model.config, "ground_token_index", None))
        outcome: dict[str, Any] = {}

        def generate() -> None:
            try:
                if not self._acquire(stop):
                    raise DemoInputError("the request was cancelled")
                try:
                    outcome["answer"] = chat(
                        self.model,
                        self.processor,
                        image,
                        prompt,
                        max_new_tokens=self.max_new_tokens,
                        streamer=streamer,
                        max_prompt_tokens=self.limits.max_prompt_tokens,
                        stop=stop,
                    )
                finally:
                    self._lock.release()
            except BaseException as e:  # handed to the caller below
                outcome["error"] = e
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        try:
            yield from streamer
            worker.join()
        finally:  # also when the caller closes this generator early: the worker stops at its next token
            stop.set()
        if isinstance(outcome.get("error"), PromptTooLong):
            raise DemoInputError(f"{outcome['error']}: start over") from None
        if "error" in outcome:
            raise outcome["error"]
        answer, answer_boxes = outcome["answer"]
        yield ChatAnswer(prompt.question, [list(b) for b in prompt.boxes], answer, answer_boxes)

    def ask(
        self,
        image: Image.Image,
        question: str | ChatPrompt,
        boxes: list[list[float]] | None = None,
        **options: Unpack[AskOptions],
    ) -> ChatAnswer:
        """``ask_stream``'s finished answer (the same arguments; ``history``, ``unused_boxes`` and ``stop`` by name)."""
        *_, result = self.ask_stream(image, question, boxes, **options)
        return result


class EncoderBackend(_ModelBackend):
    """A ``LoclipModel`` and its ``LoclipProcessor`` behind ``rank`` (boxes → labels) and ``ground``."""

    mode = "encoder"

    @torch.no_grad()
    def rank(self, image: Image.Image, boxes: list[list[float]], labels: list[str]) -> list[RegionRanking]:
        """For each box, ``labels`` ranked by a softmax over the model's scaled cosine similarities."""
        boxes = check_boxes(list(boxes or []), self.limits)
        if not boxes:
            raise DemoInputError("no boxes: draw at least one box to rank the labels for")
        size = (image.height, image.width)  # the one box rule, as the chat prompt applies it
        boxes = [list(pixel_box_in_image(box, size, f"boxes[{k}]")) for k, box in enumerate(boxes)]
        if not labels:
            raise DemoInputError("no candidate labels given")
        inputs = self.processor(images=image, boxes=[boxes], text=labels, padding=True)
        with self._lock:
            regions = self.model.get_region_features(inputs["pixel_values"], inputs["boxes"], inputs["box_mask"])[0]
            texts = self.model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
            scale = self.model.logit_scale.exp().clamp(max=100.0)  # the clamp pretraining applies
        sims = torch.nn.functional.normalize(regions, dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
        probs = (scale * sims).softmax(dim=-1)
        out = []
        for box, p in zip(boxes, probs):
            order = p.argsort(descending=True).tolist()
            out.append(RegionRanking(box, [(labels[j], round(float(p[j]), 4)) for j in order]))
        return out

    @torch.no_grad()
    def ground(self, image: Image.Image, phrase: str) -> list[float] | None:
        """The box the model predicts for ``phrase``, in ``image``'s pixels; ``None`` when it found nothing (a box
        without area, ``loclip.encoder.modeling.found_boxes``)."""
        phrase = check_text(phrase, "phrase", self.limits)
        inputs = self.processor(images=image, text=[phrase], padding=True)
        with self._lock:
            box, found = self.model.ground(
                inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], return_found=True
            )
        if not bool(found[0]):
            return None
        (pixels,) = self.processor.post_process_boxes(box[:, None], inputs["original_sizes"])
        return pixels[0].tolist()


Backend = ChatBackend | EncoderBackend


def load_backend(path: str | os.PathLike, limits: Limits | None = None) -> Backend:
    """The backend for a saved model directory: chat mode for an MLLM, encoder mode for an encoder."""
    from transformers import AutoModel, AutoModelForImageTextToText

    from loclip.core.model_dir import load_model_dir, load_processor_dir

    kind = model_type(path)
    if kind == CHAT_MODEL_TYPE:
        import loclip.mllm

        auto_class, backend = AutoModelForImageTextToText, ChatBackend
    else:
        import loclip.encoder  # noqa: F401

        auto_class, backend = AutoModel, EncoderBackend
    model = load_model_dir(path, auto_class, {kind: "the model_type checked a moment ago"}, "--model")
    return backend(model, load_processor_dir(path, "--model"), limits)
