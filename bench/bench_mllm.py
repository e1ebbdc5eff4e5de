"""Benchmark: MLLM time to first token and decode speed against transformers' ``LlavaForConditionalGeneration``.

    .venv/bin/python bench/bench_mllm.py                    # writes docs/benchmarks.md and docs/benchmarks.json

loclip's ``LoclipLlavaForConditionalGeneration`` (``loclip.finetune.builder.compose`` of a tiny random loclip
encoder and a tiny Llama, ``tiny_llm``) against a plain ``LlavaForConditionalGeneration`` whose vision tower is
a ``CLIPVisionModel`` of the same shape; the baseline gets loclip's trunk, projector and Llama weights, so
both produce the same tokens (checked). Greedy ``generate`` on one image and a short question, batch 1:

- time to first token (TTFT): ``generate(max_new_tokens=1)`` (vision tower + prefill + one token);
- decode tokens/s: ``D / (t(generate 1 + D tokens) - TTFT)``, generation forced to the full length.

``mllm_ttft_ratio`` = loclip TTFT / baseline TTFT; ``mllm_decode_ratio`` = baseline tokens/s / loclip tokens/s;
goal ≤ 1.05 for both. ``ttft_region_ratio``: loclip with one ``<region>`` box (the prompter runs too) / baseline.
"""

from __future__ import annotations

import sys
from typing import Any

import benchlib as bl
import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration

from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.finetune.builder import compose, tiny_llm
from loclip.mllm.conversation import IMAGE_TOKEN, REGION_TOKEN, encode_prompt, ensure_tokens
from loclip.synth import build_tokenizer

SECTION = "MLLM generation"
COMMAND = ".venv/bin/python bench/bench_mllm.py"
GOALS = {"mllm_ttft_ratio": 1.05, "mllm_decode_ratio": 1.05}
SHAPES = {
    # the MLLM quickstart's shape: 64 px encoder (64 image tokens), Llama of width 128, 2 layers
    "tiny": {"image_size": 64, "patch_size": 8, "width": 64, "layers": 2, "llm_hidden": 128, "llm_layers": 2},
    # 128 px with 8 px patches (256 image tokens), Llama of width 256, 4 layers
    "small": {"image_size": 128, "patch_size": 8, "width": 256, "layers": 4, "llm_hidden": 256, "llm_layers": 4},
}


def build_pair(shape: dict[str, int], tokenizer: Any) -> tuple[Any, LlavaForConditionalGeneration]:
    """loclip's MLLM and a plain transformers Llava with a same-size CLIP tower and the same weights."""
    torch.manual_seed(0)
    vision = tiny_config(
        image_size=shape["image_size"], patch_size=shape["patch_size"], width=shape["width"], layers=shape["layers"]
    ).vision_config
    llm = tiny_llm(tokenizer, hidden_size=shape["llm_hidden"], layers=shape["llm_layers"], heads=4)
    loclip = compose(LoclipVisionModel(vision), llm, tokenizer).eval()
    c = loclip.config
    config = LlavaConfig(
        vision_config=vision.trunk_config.to_dict(),
        text_config=llm.config.to_dict(),
        image_token_index=c.image_token_index,
        vision_feature_layer=c.vision_feature_layer,
        vision_feature_select_strategy=c.vision_feature_select_strategy,
        image_seq_length=c.image_seq_length,
        projector_hidden_act=c.projector_hidden_act,
        multimodal_projector_bias=c.multimodal_projector_bias,
        tie_word_embeddings=c.tie_word_embeddings,
    )
    base = LlavaForConditionalGeneration(config).eval()
    base.model.vision_tower.load_state_dict(loclip.model.vision_tower.trunk.state_dict())
    base.model.multi_modal_projector.load_state_dict(loclip.model.multi_modal_projector.state_dict())
    base.model.language_model.load_state_dict(loclip.model.language_model.state_dict())
    base.lm_head.load_state_dict(loclip.lm_head.state_dict())
    return loclip, base


def measure_shape(name: str, repeats: int, warmup: int, decode_tokens: int) -> dict[str, Any]:
    shape = SHAPES[name]
    tokenizer = build_tokenizer(model_max_length=4096)
    ensure_tokens(tokenizer, "plain")
    loclip, base = build_pair(shape, tokenizer)
    n_image = loclip.config.image_seq_length
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, shape["image_size"], shape["image_size"], generator=g)

    def prompt(question: str) -> dict[str, torch.Tensor]:
        ids = torch.tensor([encode_prompt(tokenizer, [{"role": "user", "content": question}], n_image, "plain")])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels}

    plain = prompt(f"{IMAGE_TOKEN}\nwhat is in the image ?")
    region = dict(
        prompt(f"{IMAGE_TOKEN}\nwhat is in {REGION_TOKEN} ?"),
        boxes=torch.tensor([[[0.1, 0.2, 0.5, 0.6]]]),
        box_mask=torch.ones(1, 1, dtype=torch.bool),
    )
    common = dict(do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)

    def gen(model: Any, inputs: dict[str, torch.Tensor], new: int):
        def run() -> torch.Tensor:
            with torch.no_grad():
                return model.generate(**inputs, max_new_tokens=new, min_new_tokens=new, **common)

        return run

    same = torch.equal(gen(loclip, plain, 8)(), gen(base, plain, 8)())
    n = decode_tokens
    fns = {
        "loclip_ttft": gen(loclip, plain, 1),
        "baseline_ttft": gen(base, plain, 1),
        "loclip_region_ttft": gen(loclip, region, 1),
        "loclip_gen": gen(loclip, plain, 1 + n),
        "baseline_gen": gen(base, plain, 1 + n),
    }
    med = bl.interleaved_medians(fns, repeats, warmup)
    lo_tps = n / (med["loclip_gen"] - med["loclip_ttft"])
    base_tps = n / (med["baseline_gen"] - med["baseline_ttft"])
    peaks = {k: bl.mib(bl.peak_tensor_bytes(fns[k])) for k in ("loclip_gen", "baseline_gen")}
    return {
        "shape": shape,
        "prompt_tokens": plain["input_ids"].shape[1],
        "image_tokens": n_image,
        "decode_tokens": n,
        "same_tokens_as_baseline": same,
        "ttft_ms": {
            "loclip": round(med["loclip_ttft"] * 1e3, 2),
            "baseline": round(med["baseline_ttft"] * 1e3, 2),
            "loclip_one_region": round(med["loclip_region_ttft"] * 1e3, 2),
        },
        "decode_tokens_per_s": {"loclip": round(lo_tps, 1), "baseline": round(base_tps, 1)},
        "mllm_ttft_ratio": round(med["loclip_ttft"] / med["baseline_ttft"], 3),
        "mllm_decode_ratio": round(base_tps / lo_tps, 3),
        "ttft_region_ratio": round(med["loclip_region_ttft"] / med["baseline_ttft"], 3),
        "peak_tensor_mib_generate": {"loclip": peaks["loclip_gen"], "baseline": peaks["baseline_gen"]},
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"`{r['command']}` — batch 1, greedy, median of {r['repeats']} interleaved runs after {r['warmup']} warm-up "
        f"runs, {m['torch_threads']} torch thread(s), {m['cpu']} ({m['cores']} cores), torch {m['torch']}, "
        f"transformers {m['transformers']}, {m['date']}.",
        "",
        "| size | image tokens / prompt tokens | TTFT baseline ms | TTFT loclip ms "
        "| `mllm_ttft_ratio` (goal ≤ 1.05) | met? "
        "| decode tok/s baseline | decode tok/s loclip | `mllm_decode_ratio` (goal ≤ 1.05) | met? "
        "| TTFT loclip, one `<region>` (ratio) | same tokens |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for name, s in r["sizes"].items():
        t, d = s["ttft_ms"], s["decode_tokens_per_s"]
        lines.append(
            f"| {name} | {s['image_tokens']} / {s['prompt_tokens']} | {t['baseline']:.2f} | {t['loclip']:.2f} | "
            f"{s['mllm_ttft_ratio']:.3f} | {bl.verdict(s['mllm_ttft_ratio'], GOALS['mllm_ttft_ratio'])} | "
            f"{d['baseline']:.0f} | {d['loclip']:.0f} | {s['mllm_decode_ratio']:.3f} | "
            f"{bl.verdict(s['mllm_decode_ratio'], GOALS['mllm_decode_ratio'])} | "
            f"{t['loclip_one_region']:.2f} ({s['ttft_region_ratio']:.3f}) | "
            f"{'yes' if s['same_tokens_as_baseline'] else 'no'} |"
        )
    lines += [
        "",
        "Peak tensor memory of one `generate` of 1 + D tokens (torch.profiler allocation events; MiB):",
        "",
        "| size | baseline | loclip |",
        "| --- | ---: | ---: |",
    ]
    for name, s in r["sizes"].items():
        p = s["peak_tensor_mib_generate"]
        lines.append(f"| {name} | {p['baseline']:.1f} | {p['loclip']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = bl.bench_parser(
        __doc__, "tiny,small", SHAPES, 15, "timed generate calls", 2, "tiny size, 2 repeats, 1 warm-up, 4 tokens"
    )
    parser.add_argument("--decode-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup, args.decode_tokens = "tiny", 2, 1, 4
    bl.set_threads(args.threads)
    sizes = {}
    for name in args.sizes.split(","):
        sizes[name] = measure_shape(name, args.repeats, args.warmup, args.decode_tokens)
        print(f"{name}: {sizes[name]['ttft_ms']} {sizes[name]['decode_tokens_per_s']}", file=sys.stderr)
    first = sizes.get("tiny") or next(iter(sizes.values()))
    results = {
        "mllm_ttft_ratio": first["mllm_ttft_ratio"],
        "mllm_decode_ratio": first["mllm_decode_ratio"],
        "goals": GOALS,
        "sizes": sizes,
    }
    return bl.report(args, SECTION, "mllm", COMMAND, results, markdown)


if __name__ == "__main__":
    main()
