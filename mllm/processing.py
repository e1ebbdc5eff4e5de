"""``LoclipLlavaProcessor``: letterboxed images, pixel boxes → model-frame boxes, text with expanded ``<image>``."""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from loclip.encoder import LoclipImageProcessor
from loclip.encoder.processing import load_processor_parts

from .conversation import IMAGE_TOKEN, REGION_TOKEN, check_region_count


class LoclipLlavaProcessor(ProcessorMixin):
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
        if not isinstance(image_processor, LoclipImageProcessor):
            raise TypeError(f"image_processor must be a LoclipImageProcessor, got {type(image_processor).__name__}")
        if vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(f"vision_feature_select_strategy must be 'default' or 'full', got "
                             f"{vision_feature_select_strategy!r}")
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
        if images is None and text is None:
            raise ValueError("LoclipLlavaProcessor needs images, text or both; got neither")
        if boxes is not None and images is None:
            raise ValueError("boxes were given without images: boxes are pixel coordinates of the images")
        data: dict[str, Any] = {}
        texts = [text] if isinstance(text, str) else text
        if texts is not None:
            expanded = [t.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.num_image_tokens) for t in texts]
            data.update(self.tokenizer(expanded, padding=padding, add_special_tokens=add_special_tokens,
                                       return_tensors=return_tensors))
        if images is not None:
            pixels = self.image_processor(images, return_tensors=return_tensors, return_original_sizes=True)
            data["pixel_values"] = pixels["pixel_values"]
            if return_original_sizes:
                data["original_sizes"] = pixels["original_sizes"]
            if boxes is not None:
                data["boxes"], data["box_mask"] = self.image_processor.preprocess_boxes(
                    boxes, pixels["original_sizes"], clip_boxes=clip_boxes
                )
                if texts is not None:
                    check_region_counts(texts, data["box_mask"])
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_boxes(self, boxes: Any, original_sizes: Any, box_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Normalised model-frame xyxy → list of ``[R_i, 4]`` pixel boxes of the original images."""
        return self.image_processor.post_process_boxes(boxes, original_sizes, box_mask=box_mask)

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, processor_dict: dict | None = None, **kwargs: Any
    ) -> list[Any]:
        return load_processor_parts(pretrained_model_name_or_path, **kwargs)


def check_region_counts(texts: list[str], box_mask: torch.Tensor) -> None:
    """The processor is a boundary of its own: each text's ``<region>`` placeholders and its boxes must agree
    (``conversation.check_region_count``, naming ``text[i]`` and both counts)."""
    for i, (t, row) in enumerate(zip(texts, box_mask)):
        check_region_count(t.count(REGION_TOKEN), int(row.sum()), f"text[{i}]")
