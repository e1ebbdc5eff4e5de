"""``loclip-demo``: serve a loclip MLLM (chat mode) or encoder (encoder mode) in the browser and over an API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .limits import Limits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    defaults = Limits()
    p = argparse.ArgumentParser(
        prog="loclip-demo",
        description="Referring and grounding demo. Chat mode for an MLLM checkpoint (loclip-finetune), encoder "
        "mode for an encoder (loclip-pretrain). Without --model: runs/mllm_quickstart, else runs/quickstart.",
    )
    p.add_argument("--model", type=Path, default=None, help="saved model directory (default: a quickstart output)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-pixels", type=int, default=defaults.max_pixels, help="largest image, width x height")
    p.add_argument("--max-boxes", type=int, default=defaults.max_boxes, help="boxes per request")
    p.add_argument("--max-text-chars", type=int, default=defaults.max_text_chars,
                   help="characters of a question, phrase or label list")  # fmt: skip
    p.add_argument("--max-labels", type=int, default=defaults.max_labels, help="candidate labels per request")
    p.add_argument("--max-file-mb", type=float, default=defaults.max_file_mb, help="largest upload in MB")
    p.add_argument("--concurrency", type=int, default=1, help="model requests processed at once")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting beyond those; more are refused")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load the model, build the page and serve it until interrupted."""
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a local demo
    from .backend import load_backend
    from .defaults import default_example, default_model_path

    try:
        limits = Limits(args.max_pixels, args.max_boxes, args.max_text_chars, args.max_labels, args.max_file_mb)
        path = args.model if args.model is not None else default_model_path()
        backend = load_backend(path, limits)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"loclip-demo: {e}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    from .app import build_demo

    example = default_example(backend.tokenizer, backend.image_size)
    demo = build_demo(backend, example, str(path), limits, args.concurrency, args.max_queue)
    print(f"loclip-demo: {backend.mode} mode, model {path}, example: {example.source}", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=int(limits.max_file_mb * 1024 * 1024))


if __name__ == "__main__":  # pragma: no cover
    main()
