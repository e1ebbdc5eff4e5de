"""Captioners: a transformers image-to-text or LLaVA-family model → a long and a short caption per image.

DreamLIP asks a multimodal LLM for a detailed description (its long captions) and for a one-sentence one; the
two prompts below do the same and can be changed. Three ways of asking, chosen from the checkpoint:

- ``LoclipCaptioner``: loclip's own MLLM (``LoclipLlavaForConditionalGeneration``), prompted through
  ``loclip.mllm.conversation`` exactly as ``loclip.mllm.chat`` does, a batch of images per ``generate``.
- ``ChatCaptioner``: any transformers image-text-to-text model whose processor has a chat template (LLaVA,
  LLaVA-NeXT, Qwen2-VL, InstructBLIP-style models, …): the prompt goes through ``apply_chat_template``.
- ``PlainCaptioner``: prompt-free captioners (BLIP, GIT, ``VisionEncoderDecoderModel``): one caption is
  generated with each token budget, so "long" is simply the longer generation.

Decoding is greedy (deterministic), which a resumed run relies on to reproduce the same shards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from PIL import Image

from loclip.core.json_input import read_json
from loclip.core.messages import shown_path

from .stages import Captions

LONG_PROMPT = "Describe the image in detail."
SHORT_PROMPT = "Describe the image in one short sentence."
CaptionerKind = Literal["auto", "loclip", "chat", "plain"]
CAPTIONER_KINDS: tuple[str, ...] = get_args(CaptionerKind)
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


class _GenerativeCaptioner:
    """Shared parts: two prompts, two token budgets, device and dtype, greedy ``generate``."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        long_prompt: str = LONG_PROMPT,
        short_prompt: str = SHORT_PROMPT,
        long_tokens: int = 256,
        short_tokens: int = 48,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, value in (("long_tokens", long_tokens), ("short_tokens", short_tokens)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name, value in (("long_prompt", long_prompt), ("short_prompt", short_prompt)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-blank string, got {value!r}")
        self.model, self.processor = model, processor
        self.long_prompt, self.short_prompt = long_prompt, short_prompt
        self.long_tokens, self.short_tokens = long_tokens, short_tokens
        self.device, self.dtype = torch.device(device), dtype

    def __call__(self, images: Sequence[Image.Image]) -> list[Captions]:
        if not images:
            return []
        longs = self.generate(images, self.long_prompt, self.long_tokens)
        shorts = self.generate(images, self.short_prompt, self.short_tokens)
        return [Captions(short=_clean(short), long=_clean(long)) for short, long in zip(shorts, longs)]

    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int) -> list[str]:
        raise NotImplementedError

    def _to_device(self, inputs: Any) -> dict[str, torch.Tensor]:
        return {
            k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", "") or type(self.model).__name__
        return f"{type(self).__name__}({name!r})"


class LoclipCaptioner(_GenerativeCaptioner):
    """loclip's MLLM; ``processor`` is its ``LoclipLlavaProcessor``."""

    @torch.no_grad()
    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int) -> list[str]:
        from loclip.mllm.conversation import IMAGE_TOKEN, encode_prompt

        tokenizer = self.processor.tokenizer
        messages = [{"role": "user", "content": f"{IMAGE_TOKEN}\n{prompt}"}]
        ids = encode_prompt(tokenizer, messages, self.processor.num_image_tokens, self.processor.template)
        pixels = self.processor(images=list(images))["pixel_values"]
        input_ids = torch.tensor([ids] * len(images), device=self.device)  # one prompt: no padding needed
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=pixels.to(self.device, self.dtype),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return tokenizer.batch_decode(out[:, len(ids) :], skip_special_tokens=True)


class ChatCaptioner(_GenerativeCaptioner):
    """A transformers image-text-to-text model whose processor has a chat template (LLaVA family)."""

    @torch.no_grad()
    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int) -> list[str]:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # image-token counts may differ per image (any-res): pad on the left
        inputs = self.processor(images=list(images), text=[text] * len(images), padding=True, return_tensors="pt")
        inputs = self._to_device(inputs)
        out = self.model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        return tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class PlainCaptioner(_GenerativeCaptioner):
    """A prompt-free image-to-text model (BLIP, GIT, VisionEncoderDecoder); the prompts are ignored."""

    @torch.no_grad()
    def generate(self, images: Sequence[Image.Image], prompt: str, max_new_tokens: int) -> list[str]:
        inputs = self._to_device(self.processor(images=list(images), return_tensors="pt"))
        pixels = {"pixel_values": inputs["pixel_values"]}  # the images only: no text prefix
        tokenizer = self.processor.tokenizer
        out = self.model.generate(**pixels, max_new_tokens=max_new_tokens, do_sample=False)
        return tokenizer.batch_decode(out, skip_special_tokens=True)


def _model_type(path: str | os.PathLike) -> str:
    config = Path(path) / "config.json"
    if not config.is_file():
        raise ValueError(f"captioner: {shown_path(path)} is not a model directory (no config.json)")
    settings = read_json(config, "captioner")
    model_type = settings.get("model_type") if isinstance(settings, dict) else None
    if not isinstance(model_type, str):
        raise ValueError(f"captioner: {shown_path(config)} has no model_type")
    return model_type


def _load_processor(path: str | os.PathLike) -> Any:
    """``AutoProcessor``, or an image processor + tokenizer pair for checkpoints saved without a processor
    class (a ``VisionEncoderDecoderModel`` usually is)."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError):  # no processor class: fall back to the two parts
        processor = None
    if hasattr(processor, "tokenizer") and hasattr(processor, "image_processor"):
        return processor
    return _PairProcessor(
        AutoImageProcessor.from_pretrained(path, trust_remote_code=False),
        AutoTokenizer.from_pretrained(path, trust_remote_code=False),
    )


class _PairProcessor:
    """An image processor and a tokenizer used together (only ``images=`` is ever passed)."""

    def __init__(self, image_processor: Any, tokenizer: Any) -> None:
        self.image_processor, self.tokenizer = image_processor, tokenizer

    def __call__(self, images: Any, return_tensors: str = "pt") -> Any:
        return self.image_processor(images, return_tensors=return_tensors)


def load_captioner(
    path: str | os.PathLike,
    kind: str = "auto",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **kwargs: Any,
) -> _GenerativeCaptioner:
    """A captioner for the checkpoint directory ``path``.

    ``kind="auto"`` picks ``loclip`` for a ``loclip_llava`` config, ``chat`` when the processor has a chat
    template, else ``plain``. ``kwargs`` go to the captioner (prompts, token budgets).
    """
    if kind not in CAPTIONER_KINDS:
        raise ValueError(f"captioner kind must be one of {CAPTIONER_KINDS}, got {kind!r}")
    model_type = _model_type(path)
    from transformers import AutoModelForImageTextToText, VisionEncoderDecoderModel

    if model_type == "loclip_llava" or kind == "loclip":
        import loclip.mllm  # noqa: F401  (registers the Auto classes)
    processor = _load_processor(path)
    if model_type == "vision-encoder-decoder":
        model = VisionEncoderDecoderModel.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    else:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, trust_remote_code=False)
    model = model.to(device).eval()
    if kind == "auto":
        if model_type == "loclip_llava":
            kind = "loclip"
        else:
            kind = "chat" if getattr(processor, "chat_template", None) else "plain"
    cls = {"loclip": LoclipCaptioner, "chat": ChatCaptioner, "plain": PlainCaptioner}[kind]
    return cls(model, processor, device=device, dtype=dtype, **kwargs)
