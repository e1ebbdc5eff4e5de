"""``LoclipLlavaProcessor``: letterboxed images, pixel boxes → model-frame boxes, text with expanded ``<image>``."""

from __future__ import annotations

from typing import Any

import torch
from transformers.feature_extraction_utils import BatchFeature

from loclip.encoder import LoclipImageProcessor
from loclip.encoder.processing import PixelBoxProcessor

from .conversation import IMAGE_TOKEN, REGION_TOKEN, check_region_count


class LoclipLlavaProcessor(PixelBoxProcessor):
    """A ``LoclipImageProcessor`` and the LLM's tokenizer.

    Args:
        patch_size: the vision trunk's patch size (image tokens = (image_size / patch_size)², like Llava).
        vision_feature_select_strategy: ``"default"`` drops the CLS token, ``"full"`` keeps it (as the model config).
        num_additional_image_tokens: tokens the trunk adds besides patches (1 for CLIP's CLS, 0 for SigLIP).
        template: conversation template for ``chat``/training (see ``loclip.mllm.conversation``).
    """

    def __init__(
        self,
        image_processor: LoclipImageProcessor,
        tokenizer: Any,
        patch_size: int = 16,
        vision_feature_select_strategy: str = "default",
        num_additional_image_tokens: int = 1,
        template: str = "auto",
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.check_image_processor(image_processor)
        if vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(
                f"vision_feature_select_strategy must be 'default' or 'full', got {vision_feature_select_strategy!r}"
            )
        if image_processor.image_size % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide image_size={image_processor.image_size}")
        self.patch_size = patch_size
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.num_additional_image_tokens = num_additional_image_tokens
        self.template = template
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @property
    def num_image_tokens(self) -> int:
        """``<image>`` expands to this many image tokens (what the model's projector emits per image)."""
        grid = self.image_processor.image_size // self.patch_size
        n = grid * grid + self.num_additional_image_tokens
        return n - 1 if self.vision_feature_select_strategy == "default" else n

    def __call__(
        self,
        images: Any = None,
        text: str | list[str] | None = None,
        boxes: Any = None,
        clip_boxes: bool = False,
        padding: bool | str = "longest",
        add_special_tokens: bool = True,
        return_original_sizes: bool = False,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Prepare a batch.

        Args:
            images: one image or a list → ``pixel_values`` ``[B, 3, S, S]`` (letterboxed).
            text: one string per image; each ``<image>`` becomes ``num_image_tokens`` image tokens →
                ``input_ids``, ``attention_mask`` ``[B, L]``.
            boxes: per image, pixel xyxy boxes of the original image, one per ``<region>`` in its text, in
                order → ``boxes`` ``[B, R, 4]`` normalised model-frame xyxy and ``box_mask`` ``[B, R]``.
            clip_boxes: clip every box to its image instead of refusing those more than 1 px outside it (boxes
                within 1 px, ``boxes.EDGE_TOLERANCE``, are clipped either way).
            return_original_sizes: also return ``original_sizes`` ``[B, 2]`` (height, width) for
                ``post_process_boxes`` (off by default: ``generate`` rejects unknown keys).
        """
        pixels = self.image_inputs(images, text, boxes, clip_boxes, return_tensors)
        if not return_original_sizes:
            pixels.pop("original_sizes", None)
        data: dict[str, Any] = {}
        texts = [text] if isinstance(text, str) else text
        if texts is not None:
            expanded = [t.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.num_image_tokens) for t in texts]
            data.update(
                self.tokenizer(
                    expanded, padding=padding, add_special_tokens=add_special_tokens, return_tensors=return_tensors
                )
            )
            if "box_mask" in pixels:
                check_region_counts(texts, pixels["box_mask"])
        return BatchFeature(data={**data, **pixels}, tensor_type=return_tensors)


def check_region_counts(texts: list[str], box_mask: torch.Tensor) -> None:
    """The processor is a boundary of its own: each text's ``<region>`` placeholders and its boxes must agree
    (``conversation.check_region_count``, naming ``text[i]`` and both counts)."""
    for i, (t, row) in enumerate(zip(texts, box_mask)):
        check_region_count(t.count(REGION_TOKEN), int(row.sum()), f"text[{i}]")
