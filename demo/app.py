"""The gradio UI (``build_demo``) and its API endpoints.

Two kinds of events call the same backend methods:

* the buttons of the page read the image and the boxes from an ``image_annotator`` (boxes in drawing order)
  and show the result on a second, read-only annotator;
* the named API endpoints take plain inputs (an image file, a JSON list of ``[x1, y1, x2, y2]`` pixel boxes,
  text) and return one JSON object, so ``gradio_client`` can call them without knowing the annotator's format.

Chat mode: ``/ask``. Encoder mode: ``/rank_labels`` and ``/ground``. Both: ``/info``. A refused request
raises ``gr.Error`` with the reason; the server keeps serving.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio_image_annotation import image_annotator
from PIL import Image

from .backend import Backend, ChatAnswer, ChatBackend, EncoderBackend, round_boxes
from .defaults import Example
from .limits import Limits, check_loaded_image, load_image, parse_boxes, parse_labels

QUESTION_COLOUR = (30, 144, 255)  # boxes the user asked about
ANSWER_COLOUR = (255, 0, 255)  # boxes the model answered with (magenta: rare in photos and in the synthetic world)
BOX_ALPHA = 0.15  # box fill opacity: light enough to see what is inside
MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model

REGION_RULE = (
    "Each box you draw becomes one `<region>` in the question, in drawing order: the question's own "
    "`<region>` placeholders are filled first, and one `<region>` per remaining box is appended at its end."
)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a refused request (``ValueError``, incl. ``DemoInputError``) into ``gr.Error`` with its message."""

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


def to_annotator(image: Image.Image, groups: list[tuple[list[list[float]], list[str], tuple[int, int, int]]]) -> dict:
    """An output annotator value: ``image`` with each group's boxes drawn in its colour with its labels."""
    boxes = []
    for group_boxes, labels, colour in groups:
        for box, label in zip(round_boxes(group_boxes, 1), labels):
            boxes.append(dict(zip(("xmin", "ymin", "xmax", "ymax"), box), label=label, color=colour))
    return {"image": image, "boxes": boxes}


def _input_annotator(example: Example) -> image_annotator:
    first = [dict(zip(("xmin", "ymin", "xmax", "ymax"), box), label=f"region {i + 1}", color=QUESTION_COLOUR)
             for i, box in enumerate(example.boxes)]  # fmt: skip
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
        label="Result", interactive=False, image_type="pil", show_clear_button=False, boxes_alpha=BOX_ALPHA,
        handle_size=0,  # read-only: no resize handles around the drawn boxes
        elem_id="output-annotator",
    )


def _header(backend: Backend, model_name: str, example: Example, limits: Limits) -> str:
    mode = "Chat mode (MLLM)" if backend.mode == "chat" else "Encoder mode (region ↔ text)"
    return (
        f"## loclip demo: {mode}\n"
        f"Model `{model_name}` · example image: {example.source}.  \n"
        f"Limits: {limits.max_pixels:,} pixels per image, {limits.max_boxes} boxes, "
        f"{limits.max_text_chars} characters of text, {limits.max_labels} candidate labels, "
        f"{limits.max_file_mb:g} MB per upload."
    )


def _chat_ui(backend: ChatBackend, example: Example, limits: Limits, concurrency: int) -> None:
    queue = dict(concurrency_limit=concurrency, concurrency_id=MODEL_QUEUE)
    gr.Markdown(REGION_RULE)
    with gr.Row():
        with gr.Column():
            annotated = _input_annotator(example)
            question = gr.Textbox(example.question, label="Question", max_length=limits.max_text_chars,
                                  elem_id="question")  # fmt: skip
            ask = gr.Button("Ask", variant="primary", elem_id="ask")
        with gr.Column():
            shown = _output_annotator()
            answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
            listed = gr.Textbox(label="Boxes in pixels [x1, y1, x2, y2]", interactive=False, lines=2,
                                elem_id="answer-boxes")  # fmt: skip
            sent = gr.Textbox(label="Question as the model saw it", interactive=False, elem_id="sent-question")

    @user_errors
    def ui_ask(value: dict | None, text: str) -> tuple[dict, str, str, str]:
        image, boxes = from_annotator(value, limits)
        result = backend.ask(image, text, boxes)
        drawn = to_annotator(image, [
            (result.question_boxes, [f"region {i + 1}" for i in range(len(boxes))], QUESTION_COLOUR),
            (result.answer_boxes, [f"answer {i + 1}" for i in range(len(result.answer_boxes))], ANSWER_COLOUR),
        ])  # fmt: skip
        return drawn, result.answer, list_boxes(result), result.question

    ask.click(ui_ask, [annotated, question], [shown, answer, listed, sent], api_visibility="private", **queue)

    with gr.Column(visible=False):  # plain-input twins of the buttons, for gradio_client
        image_file = gr.File(label="image", file_types=["image"])
        boxes_json = gr.JSON(label="boxes")
        question_text = gr.Textbox(label="question")
        result_json = gr.JSON(label="result")
        api_ask = gr.Button("ask")

    @user_errors
    def ask_api(image: str | None, boxes: Any, question: str | None) -> dict:
        """Ask a question about an image file; ``boxes`` (pixels, in order) fill its ``<region>``s."""
        return backend.ask(load_image(image, limits), question or "", parse_boxes(boxes)).as_dict()

    api_ask.click(ask_api, [image_file, boxes_json, question_text], result_json, api_name="ask", **queue)


def list_boxes(result: ChatAnswer) -> str:
    """The boxes of a chat turn as text, one per line (what the page lists under the answer)."""
    lines = [f"answer {i + 1}: {box}" for i, box in enumerate(round_boxes(result.answer_boxes, 1))]
    lines += [f"region {i + 1}: {box}" for i, box in enumerate(round_boxes(result.question_boxes, 1))]
    return "\n".join(lines) or "(no boxes)"


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
            labels = gr.Textbox(example.labels, label="Candidate labels (comma or newline separated)", lines=2,
                                max_length=limits.max_text_chars, elem_id="labels")  # fmt: skip
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
        box = round_boxes([backend.ground(image, text)])[0]
        return to_annotator(image, [([box], [text.strip()], ANSWER_COLOUR)]), f"**{text.strip()}**: {box}"

    private = dict(api_visibility="private", **queue)
    rank.click(ui_rank, [annotated, labels], [shown, summary], **private)
    ground.click(ui_ground, [annotated, phrase], [shown, summary], **private)

    with gr.Column(visible=False):  # plain-input twins of the buttons, for gradio_client
        image_file = gr.File(label="image", file_types=["image"])
        boxes_json = gr.JSON(label="boxes")
        labels_text = gr.Textbox(label="labels")
        phrase_text = gr.Textbox(label="phrase")
        result_json = gr.JSON(label="result")
        api_rank, api_ground = gr.Button("rank_labels"), gr.Button("ground")

    @user_errors
    def rank_labels_api(image: str | None, boxes: Any, labels: str | None) -> dict:
        """Rank candidate labels (comma/newline separated) for each pixel box of an image file."""
        loaded = load_image(image, limits)
        regions = backend.rank(loaded, parse_boxes(boxes), parse_labels(labels, limits))
        return {"regions": [r.as_dict() for r in regions]}

    @user_errors
    def ground_api(image: str | None, phrase: str | None) -> dict:
        """The box (pixels) the model predicts for a phrase in an image file."""
        box = backend.ground(load_image(image, limits), phrase or "")
        return {"phrase": (phrase or "").strip(), "box": round_boxes([box])[0]}

    api_rank.click(rank_labels_api, [image_file, boxes_json, labels_text], result_json, api_name="rank_labels",
                   **queue)  # fmt: skip
    api_ground.click(ground_api, [image_file, phrase_text], result_json, api_name="ground", **queue)


def build_demo(
    backend: Backend, example: Example, model_name: str, limits: Limits | None = None, concurrency: int = 1,
    max_queue: int = 64,
) -> gr.Blocks:  # fmt: skip
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
    with gr.Blocks(title="loclip demo", analytics_enabled=False) as demo:
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
            return {"mode": backend.mode, "model": model_name, "endpoints": endpoints,
                    "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__}}  # fmt: skip

        gr.api(info, api_name="info")
    return demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)


__all__ = ["build_demo", "from_annotator", "list_boxes", "to_annotator", "user_errors"]
