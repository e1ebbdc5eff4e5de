"""``loclip-demo``: serve a loclip MLLM (chat mode) or encoder (encoder mode) in the browser and over an API."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from loclip.core.threads import prepare_process, use_threads

prepare_process()  # before torch loads (libgomp reads its wait policy once): idle threads sleep, not spin

from loclip.core.recipe import FlagAliases, PositiveInt, build_parser, option, parse_command  # noqa: E402

from .limits import Limits  # noqa: E402

LIMITS = "request limits"


@dataclass(kw_only=True)
class DemoCommand:
    # each request limit was a flat flag (--max-turns) before it became the library's Limits (--limits.max_turns)
    FLAG_ALIASES: ClassVar[FlagAliases] = {
        f"--{f.name.replace('_', '-')}": f"limits.{f.name}" for f in dataclasses.fields(Limits)
    }

    model: str | None = option(None, "saved model directory (default: runs/mllm_quickstart, else runs/quickstart)")
    host: str = option("127.0.0.1", "address to bind (127.0.0.1: this machine only)")
    port: PositiveInt = option(7860, "port")
    limits: Limits = option(default_factory=Limits, help=LIMITS)
    concurrency: PositiveInt = option(1, "model requests processed at once", group=LIMITS)
    max_queue: PositiveInt = option(64, "requests waiting beyond those; more are refused", group=LIMITS)
    example: Literal["auto", "synthetic", "photo"] = option(
        "auto", "image the page opens on: a synthetic scene for synthetic-world models, else a photo (auto)"
    )
    threads: PositiveInt | None = option(None, "torch CPU threads (default: the available cores)")


def parse_args(argv: list[str] | None = None) -> DemoCommand:
    """The command line (see ``--help``)."""
    parser = build_parser(
        "loclip-demo",
        "Referring and grounding demo. Chat mode for an MLLM checkpoint (loclip-finetune), encoder "
        "mode for an encoder (loclip-pretrain). Without --model: runs/mllm_quickstart, else runs/quickstart.",
        DemoCommand,
    )
    return parse_command(parser, DemoCommand, argv)[0]


def main(argv: list[str] | None = None) -> None:
    """Load the model, build the page and serve it until interrupted."""
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a local demo
    from .backend import load_backend
    from .defaults import default_example, default_model_path

    try:
        limits = args.limits
        path = Path(args.model) if args.model is not None else default_model_path()
        use_threads(args.threads, field="--threads")
        backend = load_backend(path, limits)
    except (FileNotFoundError, ValueError) as e:  # a bad --model: one line (no traceback), usage-error status
        print(f"loclip-demo: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    from .app import build_demo, launch_options

    example = default_example(backend.tokenizer, backend.image_size, path, args.example)
    demo = build_demo(backend, example, str(path), limits, args.concurrency, args.max_queue)
    print(f"loclip-demo: {backend.mode} mode, model {path}, example: {example.source}", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options(limits))


if __name__ == "__main__":  # pragma: no cover
    main()
