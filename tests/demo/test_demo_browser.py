"""The demo in a real browser: Playwright drives Debian's Chromium (``scripts/test.sh`` installs it).

Chat mode: upload an image, drag a box on the annotator, type a question, Send; the chat must show the answer the
model gives for exactly those inputs, list its box in pixels and draw it on the result image; a second question
is answered after the first; Start over empties the conversation. Encoder mode: Ground draws the phrase's box.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from loclip.demo.app import ANSWER_COLOUR

CHROMIUM = "/usr/bin/chromium"
IMAGE_SIZE = (160, 120)  # width, height of the uploaded test image
DRAG = (20, 15, 100, 90)  # the box to draw, in image pixels


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/test.sh (it installs Debian's chromium) or "
            "`apt-get install -y chromium`"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


def image_placement(
    canvas_width: float, canvas_height: float, image_size: tuple[int, int] = IMAGE_SIZE
) -> tuple[float, float, float]:
    """(scale, x offset, y offset) of an image inside an annotator canvas: fitted and centred."""
    width, height = image_size
    scale = min(canvas_width / width, canvas_height / height)
    return scale, (canvas_width - width * scale) / 2, (canvas_height - height * scale) / 2


def parse_listed(text: str, kind: str) -> list[list[float]]:
    """Boxes of one kind ("turn 1 · answer", "turn 2 · region") from the page's box list
    ("turn 1 · answer 1: [x1, y1, x2, y2]")."""
    return [[float(v) for v in m.split(",")] for m in re.findall(rf"^{kind} \d+: \[([^\]]*)\]", text, re.M)]


def drawn_box(
    page, kind_colour: tuple[int, int, int], image_size: tuple[int, int] = IMAGE_SIZE, timeout: float = 15.0
) -> list[float] | None:
    """The bounding box, in image pixels, of the pixels of ``kind_colour`` on the result canvas (polls)."""
    canvas = page.locator("#output-annotator canvas").first
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if canvas.count() and canvas.is_visible():
            shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)
            close = np.abs(shot - np.array(kind_colour)).max(axis=-1) < 40
            if close.sum() > 20:
                ys, xs = np.nonzero(close)
                bbox = canvas.bounding_box()
                scale, ox, oy = image_placement(bbox["width"], bbox["height"], image_size)
                sx, sy = shot.shape[1] / bbox["width"], shot.shape[0] / bbox["height"]  # device pixels per CSS px
                return [
                    (xs.min() / sx - ox) / scale,
                    (ys.min() / sy - oy) / scale,
                    ((xs.max() + 1) / sx - ox) / scale,
                    ((ys.max() + 1) / sy - oy) / scale,
                ]
        time.sleep(0.3)
    return None


def wait_text(locator, needle: str, timeout: float = 20.0) -> str:
    """The locator's text once it holds ``needle`` (polls; the error shows what it held instead)."""
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if needle in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared; the text is {text!r}")


def messages(page, role: str) -> list[str]:
    """The chatbot's messages of one role ("user" or "bot"), in order."""
    return [m.inner_text().strip() for m in page.locator(f"#chatbot [data-testid='{role}']").all()]


def wait_for_answers(page, count: int, timeout: float = 30.0) -> list[str]:
    """The bot's messages once there are ``count`` of them and the turn is finished: it clears the question and
    lists its boxes (the fixture model always answers with one), and the chat has drawn its last update (the
    same text twice in a row)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        answers = messages(page, "bot")
        done = (
            page.locator("#question textarea").input_value() == ""
            and f"turn {count} · answer" in page.locator("#answer-boxes textarea").input_value()
        )
        if len(answers) == count and done and answers == last:
            return answers
        last = answers if done else None
        time.sleep(0.3)
    errors = page.locator(".toast-body").all_inner_texts()
    raise AssertionError(f"no {count} finished answers; the chat shows {messages(page, 'bot')}; errors: {errors}")


def test_a_conversation_with_drawn_boxes_history_and_start_over(browser, chat_server, make_image, tmp_path) -> None:
    upload = tmp_path / "upload.png"
    make_image(11, IMAGE_SIZE).save(upload)
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    page.set_default_timeout(20_000)
    page.goto(chat_server.url, wait_until="load")
    preview = page.locator("#will-send")

    # the example's pre-drawn box: the page says what it does with a question that has no <region>
    wait_text(preview, "Sends What is in <region>? with 1 box.")
    page.locator("#question textarea").fill("Where is the star?")
    wait_text(preview, "so one was appended for each")
    assert "Sends Where is the star? <region> with 1 box" in preview.inner_text()
    page.get_by_label("ignore them").check()
    wait_text(preview, "are ignored")
    assert "Sends Where is the star? with 0 boxes" in preview.inner_text()
    page.get_by_label("append a <region> for each").check()

    # replace the example image with ours and drag a box on it
    annotator = page.locator("#input-annotator")
    annotator.locator("button[aria-label='Remove Image']").click()
    annotator.locator("input[type=file]").set_input_files(upload)
    create = annotator.locator("button[aria-label='Create box']")
    create.wait_for(state="visible")
    canvas = annotator.locator("canvas").first
    canvas.wait_for(state="visible")
    time.sleep(0.5)  # let the canvas lay the new image out
    create.click()
    box = canvas.bounding_box()
    scale, ox, oy = image_placement(box["width"], box["height"])
    x1, y1, x2, y2 = (
        box["x"] + ox + DRAG[0] * scale,
        box["y"] + oy + DRAG[1] * scale,
        box["x"] + ox + DRAG[2] * scale,
        box["y"] + oy + DRAG[3] * scale,
    )
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move((x1 + x2) / 2, (y1 + y2) / 2, steps=5)
    page.mouse.move(x2, y2, steps=5)
    page.mouse.up()

    # turn 1: the drawn box becomes the question's <region>
    page.locator("#question textarea").fill("What is here?")
    wait_text(preview, "Sends What is here? <region> with 1 box")
    page.locator("#ask").click()
    (answer,) = wait_for_answers(page, 1)
    listed = page.locator("#answer-boxes textarea").input_value()
    (region,) = parse_listed(listed, "turn 1 · region")
    assert region == pytest.approx(list(DRAG), abs=2.0), f"the dragged box came back as {region}"
    assert messages(page, "user") == ["What is here? ⟨region 1⟩"]
    image = Image.open(upload).convert("RGB")
    first = chat_server.backend.ask(image, "What is here?", [region])
    assert answer == first.answer  # the page shows what the model answers for exactly these inputs
    (listed_answer,) = parse_listed(listed, "turn 1 · answer")
    assert listed_answer == pytest.approx(first.answer_boxes[0], abs=0.051)  # listed to 0.1 px
    seen = drawn_box(page, ANSWER_COLOUR)
    assert seen is not None, "no answer box was drawn on the result image"
    assert seen == pytest.approx(first.answer_boxes[0], abs=3.0), f"drawn at {seen}"

    # turn 2: the used box and question were cleared; the answer comes after the first turn
    assert page.locator("#question textarea").input_value() == ""
    page.locator("#question textarea").fill("Where is it?")
    wait_text(preview, "Sends Where is it? with 0 boxes.")
    page.locator("#ask").click()
    answers = wait_for_answers(page, 2)
    second = chat_server.backend.ask(image, "Where is it?", [], history=[first])
    assert answers == [first.answer, second.answer]
    assert messages(page, "user") == ["What is here? ⟨region 1⟩", "Where is it?"]
    listed = page.locator("#answer-boxes textarea").input_value()
    (listed_second,) = parse_listed(listed, "turn 2 · answer")
    assert listed_second == pytest.approx(second.answer_boxes[0], abs=0.051)
    assert parse_listed(listed, "turn 1 · region") == [region]

    # start over: an empty conversation
    page.locator("#start-over").click()
    page.wait_for_function("() => document.querySelectorAll(\"#chatbot [data-testid='bot']\").length === 0")
    assert page.locator("#answer-boxes textarea").input_value() == ""
    page.close()


def test_encoder_mode_grounds_a_phrase_on_the_example(browser, encoder_server) -> None:
    """Encoder mode opens on its synthetic example; Ground draws the box the model predicts for the phrase."""
    from loclip.demo.defaults import default_example

    backend = encoder_server.backend
    example = default_example(backend.tokenizer, backend.image_size)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(20_000)
    page.goto(encoder_server.url, wait_until="load")
    page.locator("#phrase textarea").fill("large white ring")
    page.locator("#ground").click()
    summary = page.locator("#summary")
    summary.filter(has_text="large white ring").wait_for()

    expected = backend.ground(example.image, "large white ring")
    shown = [float(v) for v in re.search(r"\[([^\]]*)\]", summary.inner_text()).group(1).split(",")]
    assert shown == pytest.approx(expected, abs=0.01)
    seen = drawn_box(page, ANSWER_COLOUR, example.image.size)
    assert seen is not None, "no box was drawn on the result image"
    assert seen == pytest.approx(expected, abs=3.0), f"drawn at {seen}"
    page.close()
