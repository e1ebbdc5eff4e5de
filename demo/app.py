"""The gradio UI (``build_demo``) and its API endpoints.

Two kinds of events call the same backend methods:

* the buttons of the page read the image and the boxes from an ``image_annotator`` (boxes in drawing order)
  and show the result on a second, read-only annotator;
* the named API endpoints take plain inputs (an image file, a JSON list of ``[x1, y1, x2, y2]`` pixel boxes,
  text) and return one JSON object, so ``gradio_client`` can call them without knowing the annotator's format.

Chat mode: ``/ask`` (a turn of a conversation: the earlier turns come as ``history``; the page streams the
answer into a chatbot). Encoder mode: ``/rank_labels`` and ``/ground``. Both: ``/info``. A refused request
raises ``gr.Error`` with the reason; the server keeps serving. A cancelled ``/ask`` stops its generation at the
next token. Request bodies are capped before gradio parses them (``launch_options``), and uploads are deleted
from gradio's cache after ``CACHE_MAX_AGE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
from gradio import image_utils
from gradio_image_annotation import image_annotator
from PIL import Image

from loclip.mllm.conversation import REGION_TOKEN as REGION

from .backend import Backend, ChatAnswer, ChatBackend, EncoderBackend, round_boxes
from .defaults import Example
from .http_limits import BodyLimit
from .limits import Limits, check_loaded_image, load_image, parse_boxes, parse_history, parse_labels

QUESTION_COLOUR = (30, 144, 255)  # boxes the user asked about
ANSWER_COLOUR = (255, 0, 255)  # boxes the model answered with (magenta: rare in photos and in the synthetic world)
BOX_ALPHA = 0.15  # box fill opacity: light enough to see what is inside
MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model
CACHE_SWEEP_S = 15 * 60  # how often gradio sweeps its cache of uploads and outputs...
CACHE_MAX_AGE_S = 2 * 60 * 60  # ...deleting files older than this (a conversation's image is re-saved each turn)
NOT_FOUND = "not found"  # what encoder-mode grounding says for a box without area

REGION_RULE = (
    "A conversation about one image: each question is answered after the earlier ones (a new image or *Start "
    "over* begins a new conversation). Each box you draw becomes one `<region>` of the next question, in "
    "drawing order: the question's own `<region>` placeholders are filled first; what happens to the boxes "
    "left over is your choice below, and the line under it shows what *Send* will ask. Every turn's boxes are "
    "drawn on the result image and listed in pixels."
)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a refused request (``ValueError``, incl. ``DemoInputError``) into ``gr.Error`` with its message;
    also for a generator (a streamed answer), whose errors come while it is iterated, and a coroutine."""

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from e

        return awaited

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from e

        return streaming

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from e

    return wrapper


def from_annotator(value: dict | None, limits: Limits) -> tuple[Image.Image, list[list[float]]]:
    """The input annotator's value → (RGB image, pixel boxes in drawing order).

    The annotator can rotate the image in the page (``orientation``: quarter turns clockwise) and then returns
    the unrotated image with boxes drawn on the rotated one, so the image is turned the same way here.
    """
    image = check_loaded_image(None if value is None else value.get("image"), limits)
    turns = int((value or {}).get("orientation") or 0) % 4
    if turns:
        image = image.rotate(-90 * turns, expand=True)  # PIL turns counter-clockwise for positive angles
    boxes = [[float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for b in (value or {}).get("boxes") or []]
    return image, boxes


def css_rgb(colour: tuple[int, int, int]) -> str:
    """A box colour as the annotator sends it back ("rgb(r, g, b)"): a tuple reaches the page as a list, which
    the annotator turns into that form only once its canvas has drawn it, and sent back earlier it is refused."""
    return "rgb({}, {}, {})".format(*colour)


def to_annotator(image: Image.Image, groups: list[tuple[list[list[float]], list[str], tuple[int, int, int]]]) -> dict:
    """An output annotator value: ``image`` with each group's boxes drawn in its colour with its labels."""
    boxes = []
    for group_boxes, labels, colour in groups:
        for box, label in zip(round_boxes(group_boxes, 1), labels):
            boxes.append(dict(zip(("xmin", "ymin", "xmax", "ymax"), box), label=label, color=css_rgb(colour)))
    return {"image": image, "boxes": boxes}


def _input_annotator(example: Example) -> image_annotator:
    first = [
        dict(zip(("xmin", "ymin", "xmax", "ymax"), box), label=f"region {i + 1}", color=css_rgb(QUESTION_COLOUR))
        for i, box in enumerate(example.boxes)
    ]
    return image_annotator(
        value={"image": example.image, "boxes": first},
        label="Image: upload, pick the box tool (or press C) and drag to draw boxes; drawing order = <region> order",
        image_type="pil",
        sources=["upload", "clipboard"],
        disable_edit_boxes=True,
        show_remove_button=True,
        box_min_size=4,
        boxes_alpha=BOX_ALPHA,
        elem_id="input-annotator",
    )


def _output_annotator() -> image_annotator:
    return image_annotator(
        label="Result",
        interactive=False,
        image_type="pil",
        show_clear_button=False,
        boxes_alpha=BOX_ALPHA,
        handle_size=0,  # read-only: no resize handles around the drawn boxes
        elem_id="output-annotator",
    )


def _api_inputs() -> tuple[gr.File, gr.JSON, gr.JSON]:
    """What every gradio_client endpoint reads and returns (an image file, pixel boxes; the JSON result), made
    inside the hidden column that holds the mode's other plain inputs."""
    return gr.File(label="image", file_types=["image"]), gr.JSON(label="boxes"), gr.JSON(label="result")


def _header(backend: Backend, model_name: str, example: Example, limits: Limits) -> str:
    mode = "Chat mode (MLLM)" if backend.mode == "chat" else "Encoder mode (region ↔ text)"
    return (
        f"## loclip demo: {mode}\n"
        f"Model `{model_name}` · example image: {example.source}.  \n"
        f"Limits: {limits.max_pixels:,} pixels per image, {limits.max_boxes} boxes, "
        f"{limits.max_text_chars} characters of text, {limits.max_labels} candidate labels, "
        f"{limits.max_file_mb:g} MB per upload"
        + (
            f", {limits.max_turns} questions and {limits.max_prompt_tokens:,} tokens per conversation."
            if backend.mode == "chat"
            else "."
        )
    )


UNUSED_CHOICES = {"append a <region> for each": "append", "ignore them": "ignore"}


def image_key(image: Image.Image) -> str:
    """Identifies the conversation's image: a new image starts a new conversation."""
    return f"{image.width}x{image.height}:{hashlib.sha1(image.tobytes()).hexdigest()}"


def shown_question(question: str) -> str:
    """A question as the chat shows it: each ``<region>`` numbered like its box on the images
    (markup-free, so the chat's HTML sanitiser cannot swallow it as a tag)."""
    parts = question.split(REGION)
    return parts[0] + "".join(f"⟨region {k}⟩{part}" for k, part in enumerate(parts[1:], start=1))


def chat_messages(turns: list[ChatAnswer], pending: tuple[str, str] | None = None) -> list[dict[str, str]]:
    """The chatbot's value: every finished turn, then the one being answered (question, answer so far)."""
    pairs = [(t.question, t.answer) for t in turns] + ([pending] if pending else [])
    out = []
    for question, answer in pairs:
        out += [{"role": "user", "content": shown_question(question)}, {"role": "assistant", "content": answer}]
    return out


def list_turn_boxes(turns: list[ChatAnswer]) -> str:
    """Every turn's boxes as text, one per line: "turn 2 · answer 1: [x1, y1, x2, y2]" (pixels)."""
    lines = []
    for t, turn in enumerate(turns, start=1):
        lines += [f"turn {t} · answer {k}: {box}" for k, box in enumerate(round_boxes(turn.answer_boxes, 1), 1)]
        lines += [f"turn {t} · region {k}: {box}" for k, box in enumerate(round_boxes(turn.question_boxes, 1), 1)]
    return "\n".join(lines) or "(no boxes)"


def draw_turns(image: Image.Image, turns: list[ChatAnswer]) -> dict:
    """The result annotator's value: every turn's question and answer boxes on the conversation's image."""
    groups = []
    for t, turn in enumerate(turns, start=1):
        groups.append(
            (turn.question_boxes, [f"T{t} region {k}" for k in range(1, len(turn.question_boxes) + 1)], QUESTION_COLOUR)
        )
        groups.append(
            (turn.answer_boxes, [f"T{t} answer {k}" for k in range(1, len(turn.answer_boxes) + 1)], ANSWER_COLOUR)
        )
    return to_annotator(image, groups)


def will_send(backend: ChatBackend, value: dict | None, text: str, unused: str) -> str:
    """The line under the question that says what Send will ask: the question as the model will see it and
    what happens to drawn boxes the question has no ``<region>`` for."""
    drawn = len((value or {}).get("boxes") or [])
    if not (text or "").strip():
        return f"Type a question. Boxes drawn: {drawn}."
    try:  # the request's own checks, on stand-ins for the drawn boxes (the image is not read here)
        prompt = backend.prompt((1, 1), text, [[0.0, 0.0, 1.0, 1.0]] * drawn, (), UNUSED_CHOICES[unused])
    except ValueError as e:
        return f"Cannot send: {e}"
    have, n = text.count(REGION), len(prompt.boxes)
    sent = f"Sends `{prompt.question}` with {n} box{'es' if n != 1 else ''}"
    if drawn > have and UNUSED_CHOICES[unused] == "append":
        return f"{sent}: {drawn - have} drawn box(es) had no `{REGION}` in the question, so one was appended for each."
    if drawn > have:
        return f"{sent}: {drawn - have} drawn box(es) without a `{REGION}` in the question are ignored."
    return f"{sent}."


def _chat_ui(backend: ChatBackend, example: Example, limits: Limits, concurrency: int) -> None:
    queue = dict(concurrency_limit=concurrency, concurrency_id=MODEL_QUEUE)
    gr.Markdown(REGION_RULE)
    new_conversation = {"image": None, "turns": []}
    state = gr.State(dict(new_conversation))
    with gr.Row():
        with gr.Column():
            annotated = _input_annotator(example)
            question = gr.Textbox(
                example.question, label="Question", max_length=limits.max_text_chars, elem_id="question"
            )
            unused = gr.Radio(
                list(UNUSED_CHOICES),
                value=next(iter(UNUSED_CHOICES)),
                elem_id="unused-boxes",
                label="Drawn boxes the question has no <region> for",
            )
            preview = gr.Markdown(
                will_send(backend, {"boxes": example.boxes}, example.question, next(iter(UNUSED_CHOICES))),
                elem_id="will-send",
            )
            with gr.Row():
                ask = gr.Button("Send", variant="primary", elem_id="ask")
                restart = gr.Button("Start over", elem_id="start-over")
        with gr.Column():
            chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height=440, sanitize_html=True)
            shown = _output_annotator()
            listed = gr.Textbox(
                label="Boxes of every turn, in pixels [x1, y1, x2, y2]",
                interactive=False,
                lines=3,
                elem_id="answer-boxes",
            )

    def ui_preview(value: dict | None, text: str, choice: str) -> str:
        return will_send(backend, value, text, choice)

    # one listener for the three triggers, so a slow answer to an older change never overwrites a newer one
    gr.on(
        [annotated.change, question.change, unused.change],
        ui_preview,
        [annotated, question, unused],
        preview,
        queue=False,
        api_visibility="private",
        trigger_mode="always_last",
    )

    @user_errors
    def ui_ask(value: dict | None, text: str, choice: str, conversation: dict) -> Iterator[tuple]:
        image, boxes = from_annotator(value, limits)
        key = image_key(image)
        turns = list(conversation["turns"]) if conversation.get("image") == key else []
        if conversation["turns"] and not turns:
            gr.Info("A new image: the conversation starts over.")
        prompt = backend.prompt((image.height, image.width), text, boxes, turns, UNUSED_CHOICES[choice])  # checked once
        sent = prompt.question
        keep = (gr.skip(),) * 5
        yield (chat_messages(turns, (sent, "…")), *keep)
        result = None
        # closing: when gradio closes this generator (the request went away), generation stops too
        with contextlib.closing(backend.ask_stream(image, prompt)) as stream:
            for item in stream:
                if isinstance(item, str):
                    yield (chat_messages(turns, (sent, item)), *keep)
                else:
                    result = item
        turns.append(result)
        # The boxes and the question were used: clear them. The image goes back as a PNG file: the annotator
        # would re-encode a PIL image as lossy WebP, and the next turn would find a "new" image.
        same_image = {"image": image_utils.save_image(image, annotated.GRADIO_CACHE, format="png"), "boxes": []}
        yield (
            chat_messages(turns),
            draw_turns(image, turns),
            list_turn_boxes(turns),
            {"image": key, "turns": turns},
            same_image,
            "",
        )

    ask.click(
        ui_ask,
        [annotated, question, unused, state],
        [chatbot, shown, listed, state, annotated, question],
        api_visibility="private",
        **queue,
    )

    def ui_restart() -> tuple:
        return [], None, "", dict(new_conversation)

    restart.click(ui_restart, None, [chatbot, shown, listed, state], queue=False, api_visibility="private")

    with gr.Column(visible=False):  # plain-input twins of the buttons, for gradio_client
        image_file, boxes_json, result_json = _api_inputs()
        question_text, history_json = gr.Textbox(label="question"), gr.JSON(label="history")
        api_ask = gr.Button("ask")

    @user_errors
    async def ask_api(image: str | None, boxes: Any, question: str | None, history: Any = None) -> dict:
        """Ask a question about an image file; ``boxes`` (pixels, in order) fill its ``<region>``s (the ones
        it lacks are appended). ``history``: the conversation so far, as the last answer's ``history`` (omit it
        for a new conversation). Returns this turn and ``history`` with it appended."""
        stop = threading.Event()

        def answer() -> dict:
            loaded = load_image(image, limits)
            earlier = [ChatAnswer(*turn) for turn in parse_history(history, limits)]
            result = backend.ask(loaded, question or "", parse_boxes(boxes), history=earlier, stop=stop).as_dict()
            return {**result, "history": [t.as_dict() for t in earlier] + [result]}

        # A coroutine, so that a cancelled request (gradio cancels its task) reaches this frame: a thread cannot
        # be interrupted, but the event stops its generation at the next token and frees the model.
        try:
            return await asyncio.to_thread(answer)
        except asyncio.CancelledError:
            stop.set()
            raise

    api_ask.click(ask_api, [image_file, boxes_json, question_text, history_json], result_json, api_name="ask", **queue)


def _ranking_markdown(rankings: list[dict], top: int = 5) -> str:
    lines = []
    for i, region in enumerate(rankings):
        best = ", ".join(f"{r['label']} ({r['score']:.2f})" for r in region["ranking"][:top])
        lines.append(f"**region {i + 1}** {region['box']}: {best}")
    return "  \n".join(lines)


def _encoder_ui(backend: EncoderBackend, example: Example, limits: Limits, concurrency: int) -> None:
    queue = dict(concurrency_limit=concurrency, concurrency_id=MODEL_QUEUE)
    gr.Markdown("Draw boxes and list candidate labels to rank them per box, or type a phrase to find its box.")
    with gr.Row():
        with gr.Column():
            annotated = _input_annotator(example)
            labels = gr.Textbox(
                example.labels,
                label="Candidate labels (comma or newline separated)",
                lines=2,
                max_length=limits.max_text_chars,
                elem_id="labels",
            )
            rank = gr.Button("Rank labels", variant="primary", elem_id="rank")
            phrase = gr.Textbox(example.phrase, label="Phrase", max_length=limits.max_text_chars, elem_id="phrase")
            ground = gr.Button("Ground", elem_id="ground")
        with gr.Column():
            shown = _output_annotator()
            summary = gr.Markdown(elem_id="summary")

    @user_errors
    def ui_rank(value: dict | None, text: str) -> tuple[dict, str]:
        image, boxes = from_annotator(value, limits)
        regions = [r.as_dict() for r in backend.rank(image, boxes, parse_labels(text, limits))]
        names = [f"{i + 1}: {r['ranking'][0]['label']} ({r['ranking'][0]['score']:.2f})" for i, r in enumerate(regions)]
        drawn = to_annotator(image, [([r["box"] for r in regions], names, QUESTION_COLOUR)])
        return drawn, _ranking_markdown(regions)

    @user_errors
    def ui_ground(value: dict | None, text: str) -> tuple[dict, str]:
        image, _ = from_annotator(value, limits)
        found = backend.ground(image, text)
        if found is None:
            return to_annotator(image, []), f"**{text.strip()}**: {NOT_FOUND}"
        box = round_boxes([found])[0]
        return to_annotator(image, [([box], [text.strip()], ANSWER_COLOUR)]), f"**{text.strip()}**: {box}"

    private = dict(api_visibility="private", **queue)
    rank.click(ui_rank, [annotated, labels], [shown, summary], **private)
    ground.click(ui_ground, [annotated, phrase], [shown, summary], **private)

    with gr.Column(visible=False):  # plain-input twins of the buttons, for gradio_client
        image_file, boxes_json, result_json = _api_inputs()
        labels_text, phrase_text = gr.Textbox(label="labels"), gr.Textbox(label="phrase")
        api_rank, api_ground = gr.Button("rank_labels"), gr.Button("ground")

    @user_errors
    def rank_labels_api(image: str | None, boxes: Any, labels: str | None) -> dict:
        """Rank candidate labels (comma/newline separated) for each pixel box of an image file."""
        loaded = load_image(image, limits)
        regions = backend.rank(loaded, parse_boxes(boxes), parse_labels(labels, limits))
        return {"regions": [r.as_dict() for r in regions]}

    @user_errors
    def ground_api(image: str | None, phrase: str | None) -> dict:
        """The box (pixels) the model predicts for a phrase in an image file; ``found`` is false (and ``box``
        null) when the model found nothing."""
        box = backend.ground(load_image(image, limits), phrase or "")
        return {
            "phrase": (phrase or "").strip(),
            "found": box is not None,
            "box": None if box is None else round_boxes([box])[0],
        }

    api_rank.click(rank_labels_api, [image_file, boxes_json, labels_text], result_json, api_name="rank_labels", **queue)
    api_ground.click(ground_api, [image_file, phrase_text], result_json, api_name="ground", **queue)


def build_demo(
    backend: Backend,
    example: Example,
    model_name: str,
    limits: Limits | None = None,
    concurrency: int = 1,
    max_queue: int = 64,
) -> gr.Blocks:
    """The demo's ``gr.Blocks`` for ``backend`` (chat or encoder mode), queued.

    Args:
        backend: a ``ChatBackend`` or ``EncoderBackend``.
        example: what the page starts with.
        model_name: shown in the header and by ``/info``.
        limits: request limits (the backend's own by default).
        concurrency: model events running at once (model calls themselves are serialised by the backend's lock;
            more than 1 lets image decoding and checks overlap with a model call).
        max_queue: requests waiting beyond that; more are refused with "queue is full".
    """
    limits = limits or backend.limits
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if not isinstance(max_queue, int) or max_queue < 1:
        raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
    with gr.Blocks(title="loclip demo", analytics_enabled=False, delete_cache=(CACHE_SWEEP_S, CACHE_MAX_AGE_S)) as demo:
        gr.Markdown(_header(backend, model_name, example, limits))
        if isinstance(backend, ChatBackend):
            _chat_ui(backend, example, limits, concurrency)
        elif isinstance(backend, EncoderBackend):
            _encoder_ui(backend, example, limits, concurrency)
        else:
            raise TypeError(f"backend must be a ChatBackend or EncoderBackend, got {type(backend).__name__}")

        def info() -> dict:
            """The demo's mode, model, endpoints and limits."""
            endpoints = ["/ask"] if backend.mode == "chat" else ["/rank_labels", "/ground"]
            fields = {k: getattr(limits, k) for k in limits.__dataclass_fields__}
            return {
                "mode": backend.mode,
                "model": model_name,
                "endpoints": endpoints,
                "limits": {
                    **fields,
                    "max_request_bytes": limits.max_request_bytes,
                    "max_upload_bytes": limits.max_upload_bytes,
                },
            }

        gr.api(info, api_name="info")
    return demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)


def body_limit(limits: Limits) -> Callable[[str], int]:
    """The byte limit of a request body by path: an upload may hold a file of ``max_file_mb``; every other call
    is JSON of at most ``limits.max_request_bytes``."""

    def limit_for(path: str) -> int:
        return limits.max_upload_bytes if path.rstrip("/").endswith("/upload") else limits.max_request_bytes

    return limit_for


def launch_options(limits: Limits) -> dict[str, Any]:
    """``gr.Blocks.launch`` keywords that enforce ``limits`` on HTTP requests: gradio's upload size and a cap on
    every request body, applied before gradio reads it (``http_limits.BodyLimit``)."""
    from starlette.middleware import Middleware

    return {
        "max_file_size": int(limits.max_file_mb * 1024 * 1024),
        "app_kwargs": {"middleware": [Middleware(BodyLimit, limit_for=body_limit(limits))]},
    }


__all__ = [
    "build_demo",
    "chat_messages",
    "from_annotator",
    "launch_options",
    "list_turn_boxes",
    "to_annotator",
    "user_errors",
    "will_send",
]
