"""Stage freezing, LoRA and QLoRA steps on CPU, and LoRA merges that keep every trained weight."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from loclip.finetune import adapters

pytest.importorskip("peft")

BOX = [10, 10, 30, 30]


def _batch(processor, image):
    inputs = processor(images=image, text="<image> what is in <region> a red circle", boxes=[[BOX]])
    return {**inputs, "labels": inputs["input_ids"].clone()}


def _step(model, batch) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    model.train()
    model(**batch).loss.backward()
    optimizer.step()
    model.eval()


def _lora_step(model, batch, quantized: bool = False):
    """LoRA on the LLM, stage-2 freezing, one step → (peft model, names of the parameters that changed)."""
    peft_model = adapters.apply_lora(model, r=4, alpha=8, dropout=0.0, quantized=quantized)
    adapters.set_trainable(peft_model, stage=2, tune_encoder=False, tune_llm=False)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    _step(peft_model, batch)
    return peft_model, {n for n, p in peft_model.named_parameters() if not torch.equal(before[n], p)}


def test_stage_one_trains_only_the_projectors(tiny) -> None:
    model, _ = tiny
    assert adapters.set_trainable(model, stage=1, tune_encoder=False) == ["multi_modal_projector", "region_projector"]
    trained = {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"multi_modal_projector", "region_projector"}
    adapters.set_trainable(model, stage=2, tune_encoder=True)
    assert all(p.requires_grad for p in model.parameters())


def test_lora_step_then_merge_keeps_logits_and_projectors(tiny, image) -> None:
    model, processor = tiny
    batch = _batch(processor, image)
    peft_model, changed = _lora_step(model, batch)
    assert any("lora_B" in n for n in changed) and any("region_projector" in n for n in changed)
    assert not any("lora_" not in n and ("language_model" in n or "vision_tower" in n) for n in changed)

    with torch.no_grad():
        logits = peft_model(**batch).logits
        projector = peft_model.base_model.model.model.region_projector.linear_1.weight.clone()
        plain = adapters.merged(peft_model)
        assert not any("lora" in n for n, _ in plain.named_parameters())
        torch.testing.assert_close(plain(**batch).logits, logits, atol=1e-5, rtol=1e-5)
        assert torch.equal(plain.model.region_projector.linear_1.weight, projector)


def test_tune_ground_head_trains_the_box_head_only_of_the_encoder(tiny_ground) -> None:
    model, _ = tiny_ground
    parts = adapters.set_trainable(model, stage=1, tune_encoder=False, tune_ground_head=True)
    assert parts == ["ground_projector", "multi_modal_projector", "region_projector", "vision_tower.box_head"]
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".box_head." in n for n in trained)
    assert not any(s in n for n in trained for s in (".trunk.", ".prompter.", "language_model"))


def test_stage_two_grounding_trains_projector_and_llm_not_the_frozen_encoder(tiny_ground, ground_batch) -> None:
    model, _ = tiny_ground
    adapters.set_trainable(model.train(), stage=2, tune_encoder=False)
    model(**ground_batch).ground_loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["model.ground_projector.linear_1.weight"].abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "language_model" in n)
    assert all(g is None for n, g in grads.items() if "vision_tower" in n)


def test_lora_ground_step_then_merge_keeps_the_ground_projector(tiny_ground, image) -> None:
    model, processor = tiny_ground
    inputs = processor(images=image, text="<image> where is the red circle <ground>")
    batch = {**inputs, "labels": inputs["input_ids"].clone(), "ground_boxes": torch.tensor([[[0.1, 0.2, 0.5, 0.6]]])}
    peft_model, changed = _lora_step(model, batch)
    assert any("ground_projector" in n for n in changed) and any("lora_B" in n for n in changed)
    with torch.no_grad():
        drawn = peft_model.get_base_model().ground_boxes(inputs["input_ids"], inputs["pixel_values"])[0]
        plain = adapters.merged(peft_model)
        torch.testing.assert_close(
            plain.ground_boxes(inputs["input_ids"], inputs["pixel_values"])[0], drawn, atol=1e-5, rtol=1e-5
        )


def test_qlora_step_on_cpu(build_tiny, image, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    model, processor = build_tiny(hidden=64)  # bitsandbytes' CPU 4-bit kernels need inputs of >= 64 features
    model.save_pretrained(tmp_path)
    quantized = adapters.load_quantized(tmp_path)
    kinds = {n: type(m).__name__ for n, m in quantized.named_modules()}
    assert kinds["model.language_model.layers.0.self_attn.q_proj"] == "Linear4bit"
    assert not any(k == "Linear4bit" for n, k in kinds.items() if "language_model" not in n)
    batch = _batch(processor, image)
    peft_model, changed = _lora_step(quantized, batch, quantized=True)
    assert any("lora_B" in n for n in changed) and any("multi_modal_projector" in n for n in changed)
    assert torch.isfinite(peft_model(**batch).loss)


def test_lora_trains_loclips_new_token_rows_in_and_out(tiny_ground, image) -> None:
    """LoRA never touches embedding rows: ``<ground>`` (new to the LLM) must train beside it, in the input table
    and, for an untied LLM like this one, in the output head; merging keeps the trained rows."""
    model, processor = tiny_ground
    ground = model.config.ground_token_index
    inputs = processor(images=image, text="<image> where is the red circle <ground>")
    batch = {**inputs, "labels": inputs["input_ids"].clone(), "ground_boxes": torch.tensor([[[0.1, 0.2, 0.5, 0.6]]])}
    rows_in = model.get_input_embeddings().weight.detach().clone()
    rows_out = model.get_output_embeddings().weight.detach().clone()
    peft_model = adapters.apply_lora(
        model, r=4, alpha=8, dropout=0.0, trainable_tokens=adapters.loclip_token_ids(model)
    )
    adapters.set_trainable(peft_model, stage=2, tune_encoder=False, tune_llm=False)
    _step(peft_model, batch)
    with torch.no_grad():
        logits = peft_model(**batch).logits
        plain = adapters.merged(peft_model)
        torch.testing.assert_close(plain(**batch).logits, logits, atol=1e-5, rtol=1e-5)
    new_in, new_out = plain.get_input_embeddings().weight, plain.get_output_embeddings().weight
    assert not torch.equal(new_in[ground], rows_in[ground]) and not torch.equal(new_out[ground], rows_out[ground])
    others = torch.ones(len(rows_in), dtype=torch.bool)
    others[adapters.loclip_token_ids(model)] = False
    assert torch.equal(new_in[others], rows_in[others]) and torch.equal(new_out[others], rows_out[others])


def test_qlora_exports_by_merging_into_the_float_base(build_tiny, image, tmp_path: Path) -> None:
    """The 4-bit merge does not survive save → reload; the export merges the trained adapters into the float base
    saved before quantizing, keeps every trained weight, and reloads to the same logits."""
    pytest.importorskip("bitsandbytes")
    from loclip.mllm import LoclipLlavaForConditionalGeneration

    model, processor = build_tiny(hidden=64)
    model.save_pretrained(tmp_path / "base")
    batch = _batch(processor, image)
    peft_model, changed = _lora_step(adapters.load_quantized(tmp_path / "base"), batch, quantized=True)
    with pytest.raises(ValueError, match="peft"):
        adapters.merged_float(model, tmp_path / "base")
    plain = adapters.merged_float(peft_model, tmp_path / "base").eval()
    assert not any("lora" in n for n, _ in plain.named_parameters())
    assert torch.equal(
        plain.model.multi_modal_projector.linear_1.weight,
        peft_model.get_base_model().model.multi_modal_projector.linear_1.weight,
    )
    q_proj = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(plain.state_dict()[q_proj], model.state_dict()[q_proj])  # the LoRA update is in
    plain.save_pretrained(tmp_path / "export")
    reloaded = LoclipLlavaForConditionalGeneration.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, plain(**batch).logits)
