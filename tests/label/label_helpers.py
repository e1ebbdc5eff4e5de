"""Tiny random captioner and detector checkpoints for the VESL tests, built here and saved (never downloaded).

Also importable by a ``loclip-label`` subprocess (``python:label_helpers:…`` with this folder on PYTHONPATH):
``slow_detector`` wraps the tiny OWLv2 in ``$LABEL_TEST_OWL`` with a pause per batch, so a test can kill a
run part-way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor, PreTrainedTokenizerFast
from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

from loclip.encoder import LoclipVisionModel, tiny_config
from loclip.finetune.builder import compose, make_processor, tiny_llm
from loclip.label import OwlDetector
from loclip.mllm.conversation import ensure_tokens
from loclip.synth import build_tokenizer
from loclip.synth.language import vocabulary
from loclip.synth.tokenizer import SPECIAL_TOKENS, word_tokenizer

OWL_MAX_TEXT = 16


def plain_tokenizer(words: list[str], max_length: int = OWL_MAX_TEXT) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with ``<bos> … <eos>`` around each text: the world's builder, without the MLLM's
    tokens, ids in sorted word order."""
    return word_tokenizer(sorted(set(words)), SPECIAL_TOKENS[:4], max_length)


def owl_processor(image_size: int = 32) -> Owlv2Processor:
    """An OWLv2 processor (PIL backend: no torchvision) over the synthetic world's words."""
    return Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": image_size, "width": image_size}),
        tokenizer=plain_tokenizer(vocabulary()),
    )


def save_tiny_owl(directory: Path, image_size: int = 32) -> Path:
    """A random OWLv2 (1 layer, width 32, 16 patches) and its processor, saved to ``directory``."""
    processor = owl_processor(image_size)
    tower = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    config = Owlv2Config(
        text_config=dict(
            vocab_size=len(processor.tokenizer),
            max_position_embeddings=OWL_MAX_TEXT,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            **tower,
        ),
        vision_config=dict(image_size=image_size, patch_size=8, **tower),
        projection_dim=32,
    )
    torch.manual_seed(0)
    Owlv2ForObjectDetection(config).eval().save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def save_tiny_mllm(directory: Path) -> Path:
    """loclip's MLLM: a random 64 px encoder and a 2-layer Llama over the synthetic world's tokenizer."""
    tokenizer = build_tokenizer(model_max_length=1024)
    ensure_tokens(tokenizer, "plain")
    torch.manual_seed(0)
    encoder = LoclipVisionModel(tiny_config().vision_config)
    model = compose(encoder, tiny_llm(tokenizer, hidden_size=32, layers=2, heads=4), tokenizer).eval()
    model.save_pretrained(directory)
    make_processor(model.config, tokenizer, "plain").save_pretrained(directory)
    return directory


def slow_detector():
    """Factory for ``--detector python:label_helpers:slow_detector``: the tiny OWLv2 at ``$LABEL_TEST_OWL``,
    pausing ``$LABEL_TEST_PAUSE`` seconds per batch."""
    real = OwlDetector.from_pretrained(os.environ["LABEL_TEST_OWL"])
    pause = float(os.environ.get("LABEL_TEST_PAUSE", "0.3"))

    def detect(images, queries):
        time.sleep(pause)
        return real(images, queries)

    return detect


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def save_tiny_llava(directory: Path) -> Path:
    """A plain transformers LLaVA (CLIP vision, 1-layer Llama) whose processor has a chat template."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = plain_tokenizer(vocabulary() + ["user", "assistant"], max_length=256)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tower = dict(hidden_size=32, intermediate_size=37, num_attention_heads=2)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(num_hidden_layers=2, image_size=32, patch_size=8, **tower),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            num_hidden_layers=1,
            num_key_value_heads=2,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **tower,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        image_seq_length=16,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).eval().save_pretrained(directory)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=8,
        chat_template=CHAT_TEMPLATE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    ).save_pretrained(directory)
    return directory


def save_tiny_vision_encoder_decoder(directory: Path) -> Path:
    """A prompt-free captioner: ``VisionEncoderDecoderModel`` (ViT + GPT-2), saved without a processor class."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = plain_tokenizer(vocabulary(), max_length=32)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    encoder = ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8
    )
    decoder = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=1,
        n_head=2,
        n_positions=64,
        is_decoder=True,
        add_cross_attention=True,
        **ids,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = (
        ids["bos_token_id"],
        ids["pad_token_id"],
        ids["eos_token_id"],
    )
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config).eval()
    model.generation_config.decoder_start_token_id = ids["bos_token_id"]
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = (
        ids["pad_token_id"],
        ids["eos_token_id"],
    )
    model.save_pretrained(directory)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
