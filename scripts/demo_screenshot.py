"""Take the README's demo screenshot: serve a model, open the page in headless Chromium, click the main
button on the example and save the page.

Usage: .venv/bin/python scripts/demo_screenshot.py [--model runs/mllm_quickstart] [--out docs/img/demo.png]
       [--chat-question refer|ground] [--encoder-action rank|ground]
Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from loclip.demo.app import build_demo  # noqa: E402
from loclip.demo.backend import load_backend  # noqa: E402
from loclip.demo.defaults import default_example, default_model_path  # noqa: E402
from loclip.training.distributed import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the quickstart's)")
    parser.add_argument("--out", type=Path, default=Path("docs/img/demo.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--encoder-action", choices=("rank", "ground"), default="rank",
                        help="encoder mode: which button to click on the example (default %(default)s)")
    parser.add_argument("--chat-question", choices=("refer", "ground"), default="refer",
                        help="chat mode: ask about the example's box (refer) or where its phrase is, with no box "
                             "(ground) (default %(default)s)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    path = args.model or default_model_path()
    backend = load_backend(path)
    example = default_example(backend.tokenizer, backend.image_size)
    if args.chat_question == "ground":
        example = replace(example, boxes=[], question=f"Where is the {example.phrase}?")
    demo = build_demo(backend, example, str(path))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=args.chromium,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            if backend.mode == "chat":
                page.locator("#ask").click()
                page.wait_for_function("() => document.querySelector('#sent-question textarea').value.length > 0")
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
