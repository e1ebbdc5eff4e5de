"""Take the README's demo screenshots: serve a model, open the page in headless Chromium, use it on the example
and save the page. Chat mode holds a conversation: the example's question about its pre-drawn box, then each
further ``--questions`` entry (no boxes), every answer waited for.

Usage: .venv/bin/python scripts/demo_screenshot.py [--model runs/mllm_quickstart] [--out docs/img/demo.png]
       [--questions "Where is the {phrase}?" ...] [--encoder-action rank|ground]
Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch
from playwright.sync_api import sync_playwright

from loclip.demo.app import build_demo
from loclip.demo.backend import load_backend
from loclip.demo.defaults import default_example, default_model_path
from loclip.training.distributed import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the quickstart's)")
    parser.add_argument("--out", type=Path, default=Path("docs/img/demo.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument(
        "--encoder-action",
        choices=("rank", "ground"),
        default="rank",
        help="encoder mode: which button to click on the example (default %(default)s)",
    )
    parser.add_argument(
        "--questions",
        nargs="*",
        default=["Where is the {phrase}?", "Describe the image briefly."],
        help="chat mode: questions after the example's own, {phrase} = the example's phrase (default %(default)s)",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    path = args.model or default_model_path()
    backend = load_backend(path)
    example = default_example(backend.tokenizer, backend.image_size, path)
    demo = build_demo(backend, example, str(path))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=args.chromium,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            if backend.mode == "chat":
                questions = [example.question, *(q.format(phrase=example.phrase) for q in args.questions)]
                for question in questions:
                    page.locator("#question textarea").fill(question)
                    page.locator("#ask").click()
                    # a finished turn clears the question box
                    page.wait_for_function("() => document.querySelector('#question textarea').value === ''")
                    page.wait_for_timeout(500)
                page.evaluate(
                    "() => document.querySelectorAll('#chatbot *').forEach("
                    "e => { if (e.scrollHeight > e.clientHeight) e.scrollTop = 0; })"
                )  # the first turn
            elif args.encoder_action == "rank":
                page.locator("#rank").click()
                page.locator("#summary").filter(has_text="region 1").wait_for()
            else:
                page.locator("#ground").click()
                page.locator("#summary").filter(has_text="[").wait_for()
            page.wait_for_timeout(1500)  # let the result canvas draw
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
