"""LoclipLlava: exactly plain Llava without regions; regions replace <region> tokens; generate; Auto classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, LlavaConfig, LlavaForConditionalGeneration

from loclip.mllm import LoclipLlavaForConditionalGeneration, LoclipLlavaProcessor, chat

BOX = [10, 10, 30, 30]


def plain_llava(model: LoclipLlavaForConditionalGeneration) -> LlavaForConditionalGeneration:
    """A plain transformers Llava holding the same weights (all but the region projector)."""
    fields = {k: v for k, v in model.config.to_dict().items() if k not in ("region_token_index", "model_type")}
    plain = LlavaForConditionalGeneration(LlavaConfig(**fields)).eval()
    result = plain.load_state_dict(model.state_dict(), strict=False)
    assert not result.missing_keys and all("region_projector" in k for k in result.unexpected_keys)
    return plain


def image_features(out) -> torch.Tensor:
    """The projected image features an output carries: ``image_outputs.pooler_output`` (transformers >= 5.24)
    or ``image_hidden_states`` (before), without touching the deprecated name where the new one exists."""
    fields = out.__dataclass_fields__
    found = out.image_outputs.pooler_output if "image_outputs" in fields else out.image_hidden_states
    return torch.cat(list(found)) if isinstance(found, (list, tuple)) else found


@torch.no_grad()
def test_without_regions_logits_equal_plain_llava(tiny, image) -> None:
    model, processor = tiny
    inputs = processor(images=[image, image.rotate(90)], text=["<image> what is in the image", "<image> a red"])
    ours, plain = model(**inputs), plain_llava(model)(**inputs)
    torch.testing.assert_close(ours.logits, plain.logits, atol=0, rtol=0)


@torch.no_grad()
def test_regions_use_one_trunk_pass_and_the_same_image_features(tiny, image) -> None:
    model, processor = tiny
    plain_inputs = processor(images=image, text="<image> what is in the image")
    region_inputs = processor(images=image, text="<image> what is in <region>", boxes=[[BOX]])
    calls = []
    hook = model.model.vision_tower.trunk.register_forward_hook(lambda *a: calls.append(1))
    with_regions = model(**region_inputs)
    hook.remove()
    assert len(calls) == 1  # image tokens and the prompter share one trunk pass
    torch.testing.assert_close(image_features(with_regions), image_features(model(**plain_inputs)), atol=0, rtol=0)
    # the region token's embedding is the projected region feature, so a different box changes the output
    other = processor(images=image, text="<image> what is in <region>", boxes=[[[40, 20, 79, 49]]])
    assert not torch.allclose(model(**other).logits[0, -1], with_regions.logits[0, -1])


@torch.no_grad()
def test_region_count_mismatch_names_both_counts(tiny, image) -> None:
    model, processor = tiny
    inputs = processor(images=image, text="<image> what is in <region> and <region>")
    inputs["boxes"], inputs["box_mask"] = torch.tensor([[[0.1, 0.1, 0.3, 0.3]]]), torch.tensor([[True]])
    with pytest.raises(ValueError, match=r"^input_ids\[0\] has 2 <region> placeholders but 1 boxes: give one box"):
        model(**inputs)
    with pytest.raises(ValueError, match=r"^text\[0\] has 2 <region> placeholders but 1 boxes: give one box"):
        processor(images=image, text="<image> <region> <region>", boxes=[[BOX]])


@torch.no_grad()
def test_generate_with_regions_matches_uncached_decoding(tiny, image) -> None:
    model, processor = tiny
    inputs = processor(images=image, text="<image> what is in <region>", boxes=[[BOX]], add_special_tokens=False)
    cached = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    uncached = model.generate(**inputs, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


@torch.no_grad()
def test_save_load_auto_classes_and_identical_greedy_chat(tiny, image, tmp_path: Path) -> None:
    model, processor = tiny
    before = chat(model, processor, image, "What is in <region>?", boxes=[BOX], max_new_tokens=8)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    again_processor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(again, LoclipLlavaForConditionalGeneration)
    assert isinstance(again_processor, LoclipLlavaProcessor)
    assert again_processor.num_image_tokens == processor.num_image_tokens == 64
    assert again_processor.template == processor.template
    assert chat(again, again_processor, image, "What is in <region>?", boxes=[BOX], max_new_tokens=8) == before
