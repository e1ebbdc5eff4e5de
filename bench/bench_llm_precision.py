"""Benchmark: a LoRA training step of the MLLM on a real LLM in bf16 against fp32 (what the SmolLM2 recipe,
``configs/mllm/smollm2.yaml``, trains in).

    .venv/bin/loclip-prepare-llm --out runs/llm/smollm2          # once
    .venv/bin/python bench/bench_llm_precision.py --threads 2     # writes docs/benchmarks.md and .json

The MLLM is the recipe's: the prepared LLM (``--llm``) with LoRA r 16 on every linear layer and its new
token rows trainable, on a tiny random 64 px loclip encoder (64 image tokens; the encoder is a rounding error
of the step). One batch of ``--batch`` copies of a synthetic-world conversation of the recipe's average
length (9 turns, about 270 tokens with the chat template). A step is forward + backward; the fp32 and bf16
models (the bf16 one is a cast copy, as DeepSpeed's bf16 mode runs it) are timed interleaved.
``llm_bf16_speedup`` = median fp32 step / median bf16 step.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import benchlib as bl
import torch

SECTION = "LLM training precision (SmolLM2 recipe)"
COMMAND = ".venv/bin/python bench/bench_llm_precision.py --threads 2"
CONVERSATION = [
    ("<image>\nWhat is in <region>?", "a large purple diamond"),
    ("Where is the small green cross?", "[312, 125, 515, 328]"),
    ("Find the small ring.", "[437, 468, 609, 640]"),
    ("What is in <region>?", "a small green cross"),
    ("Describe the image briefly.", "four shapes on a plum background"),
    ("Where is the large ring?", "[624, 47, 921, 343]"),
    ("What object is in <region>?", "a small purple ring"),
    ("Find the large diamond.", "[468, 609, 780, 921]"),
    ("What is in <region>?", "a large blue ring"),
]
BOXES = [[30, 39, 50, 59], [20, 8, 33, 21], [28, 30, 39, 41], [40, 3, 59, 22]]


def build(llm_dir: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """(LoRA MLLM in fp32, one training batch of the conversation)."""
    from PIL import Image
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loclip.encoder import LoclipVisionModel, tiny_config
    from loclip.finetune import adapters
    from loclip.finetune.builder import add_token_rows, compose, make_processor
    from loclip.mllm.conversation import encode_conversation, ensure_tokens

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    added = ensure_tokens(tokenizer, "auto")
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=torch.float32)
    add_token_rows(llm, list(range(len(tokenizer) - added, len(tokenizer))))
    model = compose(LoclipVisionModel(tiny_config().vision_config), llm, tokenizer, vision_feature_layer=-1)
    processor = make_processor(model.config, tokenizer, "auto")
    model = adapters.apply_lora(model, 16, 32, 0.0, trainable_tokens=adapters.loclip_token_ids(model))
    adapters.set_trainable(model, stage=2, tune_encoder=False, tune_llm=False)
    turns = [t for q, a in CONVERSATION for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
    ids, labels = encode_conversation(tokenizer, turns, processor.num_image_tokens, "auto")
    inputs = processor(images=Image.new("RGB", (64, 64), (90, 40, 90)), boxes=[BOXES])
    batch = {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        **inputs,
    }
    return model.train(), batch


def step_fn(model: Any, batch: dict[str, torch.Tensor]):
    def run() -> None:
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()

    return run


def measure(llm_dir: Path, batch_size: int, repeats: int, warmup: int) -> dict[str, Any]:
    model, one = build(llm_dir)
    batch = {k: v.repeat(batch_size, *[1] * (v.dim() - 1)) for k, v in one.items()}
    half = copy.deepcopy(model).to(torch.bfloat16)
    half_batch = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in batch.items()}
    med = bl.interleaved_medians({"fp32": step_fn(model, batch), "bf16": step_fn(half, half_batch)}, repeats, warmup)
    tokens = int(batch["attention_mask"].sum())
    return {
        "llm": str(llm_dir),
        "batch": batch_size,
        "tokens_per_step": tokens,
        "step_s": {"fp32": round(med["fp32"], 3), "bf16": round(med["bf16"], 3)},
        "tokens_per_s": {"fp32": round(tokens / med["fp32"], 1), "bf16": round(tokens / med["bf16"], 1)},
        "llm_bf16_speedup": round(med["fp32"] / med["bf16"], 3),
    }


def markdown(r: dict[str, Any]) -> str:
    m, s = r["machine"], r["step"]
    return "\n".join(
        [
            f"`{r['command']}` — LoRA step (forward + backward) of the MLLM on `{s['llm']}`, batch {s['batch']} "
            f"({s['tokens_per_step']} tokens), median of {r['repeats']} interleaved steps after {r['warmup']} warm-up "
            f"steps, {m['torch_threads']} torch thread(s), {m['cpu']} ({m['cores']} cores), torch {m['torch']}, "
            f"{m['date']}; other loclip training processes running: {m['other_training_processes']}.",
            "",
            "| precision | step s | tokens/s |",
            "| --- | ---: | ---: |",
            f"| fp32 | {s['step_s']['fp32']:.2f} | {s['tokens_per_s']['fp32']:.0f} |",
            f"| bf16 | {s['step_s']['bf16']:.2f} | {s['tokens_per_s']['bf16']:.0f} |",
            "",
            f"`llm_bf16_speedup` = {r['llm_bf16_speedup']:.2f} (fp32 step / bf16 step): the recipe trains in bf16.",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bl.bench_parser(
        __doc__, "smollm2", ["smollm2"], 5, "timed steps per precision", 1, "batch 1, 1 repeat, no warm-up"
    )
    parser.add_argument("--llm", type=Path, default=Path("runs/llm/smollm2"), help="a prepared causal-LM directory")
    parser.add_argument("--batch", type=int, default=4, help="conversations per step (the recipe's batch)")
    args = parser.parse_args(argv)
    if not (args.llm / "config.json").is_file():
        sys.exit(f"bench_llm_precision: no LLM at {args.llm}; make it with `loclip-prepare-llm --out {args.llm}`")
    if args.quick:
        args.batch, args.repeats, args.warmup = 1, 1, 0
    bl.set_threads(args.threads)
    step = measure(args.llm, args.batch, args.repeats, args.warmup)
    results = {"llm_bf16_speedup": step["llm_bf16_speedup"], "step": step}
    return bl.report(args, SECTION, "llm_precision", COMMAND, results, markdown)


if __name__ == "__main__":
    main()
