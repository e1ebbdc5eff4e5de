"""The vision half as a vision tower of a *plain* transformers Llava, and the Auto-class registrations."""

from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoProcessor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from loclip.encoder import (
    LoclipImageProcessor,
    LoclipModel,
    LoclipProcessor,
    LoclipVisionConfig,
    LoclipVisionModel,
    tiny_config,
)


def _llava(tokenizer) -> LlavaForConditionalGeneration:
    vision = tiny_config().vision_config  # 64 px, 8 px patches: 64 patch tokens
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=64,
    )
    return LlavaForConditionalGeneration(config)


def test_plain_llava_trains_and_generates_through_llava_processor(tokenizer, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _llava(tokenizer)
    assert isinstance(model.model.vision_tower, LoclipVisionModel)
    processor = LlavaProcessor(
        image_processor=LoclipImageProcessor(image_size=64),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    image = Image.new("RGB", (80, 50), (200, 30, 30))
    inputs = processor(images=image, text="<image> what is in the image a red circle", return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_index).sum() == 64

    out = model(**inputs, labels=inputs["input_ids"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grad = model.model.vision_tower.trunk.embeddings.patch_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the loss reaches the loclip tower

    model.eval()
    prompt = processor(images=image, text="<image> what is in the image", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, prompt["input_ids"].shape[1] + 4)

    # the composed config round-trips through plain transformers after `import loclip.encoder`
    model.save_pretrained(tmp_path)
    again = LlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert isinstance(again.config.vision_config, LoclipVisionConfig)
    with torch.no_grad():
        torch.testing.assert_close(again(**prompt).logits, model(**prompt).logits, atol=0, rtol=0)


def test_auto_classes_resolve_loclip_directories(tokenizer, tmp_path: Path) -> None:
    LoclipModel(tiny_config()).save_pretrained(tmp_path)
    LoclipProcessor(LoclipImageProcessor(image_size=64), tokenizer).save_pretrained(tmp_path)
    assert isinstance(AutoModel.from_pretrained(tmp_path), LoclipModel)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), LoclipProcessor)
    image_processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(image_processor, LoclipImageProcessor) and image_processor.image_size == 64
