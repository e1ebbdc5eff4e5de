"""``LoclipProcessor``: images (+ boxes in image pixels) and text → model inputs, and boxes back to pixels; what it
shares with the MLLM's processor is ``PixelBoxProcessor``."""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .detection_post import DEFAULT_MAX_DETECTIONS, DEFAULT_NMS_IOU, DEFAULT_THRESHOLD
from .image_processing import LoclipImageProcessor


class PixelBoxProcessor(ProcessorMixin):
    """What loclip's processors share (``LoclipProcessor``, ``loclip.mllm.LoclipLlavaProcessor``): a
    ``LoclipImageProcessor`` (boxes are mapped with its geometry, so no other one will do) and a tokenizer; images
    and pixel boxes in, boxes back to pixels out; loading by class (``load_processor_parts``)."""

    @staticmethod
    def check_image_processor(image_processor: Any) -> None:
        if not isinstance(image_processor, LoclipImageProcessor):
            raise TypeError(f"image_processor must be a LoclipImageProcessor, got {type(image_processor).__name__}")

    def image_inputs(
        self, images: Any, text: Any, boxes: Any, clip_boxes: bool, return_tensors: str | None
    ) -> dict[str, Any]:
        """The images' ``pixel_values`` ``[B, 3, S, S]`` and ``original_sizes`` ``[B, 2]``, and for ``boxes`` (one
        list of pixel xyxy boxes per image) ``boxes`` ``[B, R, 4]`` in the model frame and ``box_mask`` ``[B, R]``
        (``LoclipImageProcessor.preprocess_boxes``); ``{}`` without images. ``ValueError`` for neither images nor
        ``text``, or boxes without images."""
        if images is None and text is None:
            raise ValueError(f"{type(self).__name__} needs images, text or both; got neither")
        if boxes is not None and images is None:
            raise ValueError("boxes were given without images: boxes are pixel coordinates of the images")
        if images is None:
            return {}
        data = dict(self.image_processor(images, return_tensors=return_tensors, return_original_sizes=True))
        if boxes is not None:
            data["boxes"], data["box_mask"] = self.image_processor.preprocess_boxes(
                boxes, data["original_sizes"], clip_boxes=clip_boxes
            )
        return data

    def post_process_boxes(
        self, boxes: Any, original_sizes: Any, box_mask: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Normalised model-frame xyxy (``[B, R, 4]`` or list of ``[R_i, 4]``) → list of ``[R_i, 4]`` float
        tensors in original-image pixels; ``original_sizes`` is ``[B, 2]`` (height, width). See
        ``LoclipImageProcessor.post_process_boxes``."""
        return self.image_processor.post_process_boxes(boxes, original_sizes, box_mask=box_mask)

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, processor_dict: dict | None = None, **kwargs: Any
    ) -> list[Any]:
        return load_processor_parts(pretrained_model_name_or_path, **kwargs)


class LoclipProcessor(PixelBoxProcessor):
    """A ``LoclipImageProcessor`` plus any transformers tokenizer.

    ``save_pretrained`` writes the tokenizer files and ``processor_config.json`` (which nests the image
    processor); ``from_pretrained`` reads them back.
    """

    def __init__(self, image_processor: LoclipImageProcessor, tokenizer: Any, chat_template: str | None = None) -> None:
        self.check_image_processor(image_processor)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(
        self,
        images: Any = None,
        text: str | list[str] | None = None,
        boxes: Any = None,
        clip_boxes: bool = False,
        padding: bool | str = "max_length",
        truncation: bool | str = True,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """Prepare a batch.

        Args:
            images: one image or a list (see ``LoclipImageProcessor``) → ``pixel_values`` ``[B, 3, S, S]``,
                ``original_sizes`` ``[B, 2]`` (height, width).
            text: a string or list of strings → ``input_ids``, ``attention_mask`` ``[T, L]``.
            boxes: one list of pixel xyxy boxes per image, in the original image after EXIF orientation →
                ``boxes`` float32 ``[B, R, 4]`` normalised model-frame xyxy, zero-padded, and ``box_mask``
                bool ``[B, R]``. A box within 1 px of its image (``boxes.EDGE_TOLERANCE``) is clipped to it; one
                reaching further outside raises ``ValueError``.
            clip_boxes: clip every box to the image instead (a box left with zero area still raises).
            padding, truncation, max_length: passed to the tokenizer.
        """
        pixels = self.image_inputs(images, text, boxes, clip_boxes, return_tensors)
        data: dict[str, Any] = {}
        if text is not None:
            data.update(
                self.tokenizer(
                    text, padding=padding, truncation=truncation, max_length=max_length, return_tensors=return_tensors
                )
            )
        return BatchFeature(data={**data, **pixels}, tensor_type=return_tensors)

    def post_process_grounded_object_detection(
        self,
        outputs: Any,
        threshold: float = DEFAULT_THRESHOLD,
        target_sizes: Any = None,
        text_labels: list[list[str]] | None = None,
        nms_iou: float = DEFAULT_NMS_IOU,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
    ) -> list[dict[str, Any]]:
        """OWL-ViT's post-processing for ``LoclipForObjectDetection``: per image ``{"scores", "labels" (query index),
        "boxes" (pixels of ``target_sizes`` ``[B, 2]`` as (height, width)), "text_labels"}`` (the query text of each
        box when ``text_labels`` gives each image's queries, else ``None``)."""
        results = self.image_processor.post_process_object_detection(
            outputs, threshold, target_sizes, nms_iou, max_detections
        )
        if text_labels is not None and len(text_labels) != len(results):
            raise ValueError(f"text_labels has {len(text_labels)} query lists for {len(results)} images")
        for i, result in enumerate(results):
            names = text_labels[i] if text_labels is not None else None
            result["text_labels"] = [names[j] for j in result["labels"].tolist()] if names is not None else None
        return results


def load_processor_parts(path: str | os.PathLike, **kwargs: Any) -> list[Any]:
    """[image processor, tokenizer] of a saved processor directory.

    The image processor is always ours: loaded by class rather than through AutoImageProcessor, so that a saved
    processor loads whether or not the Auto classes are registered (and boxes keep its geometry). Any tokenizer.
    """
    subfolder = kwargs.pop("subfolder", "")
    kwargs.pop("trust_remote_code", None)  # never run code from the directory (an auto_map would ask to)
    image_processor = LoclipImageProcessor.from_pretrained(path, subfolder=subfolder, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, subfolder=subfolder, trust_remote_code=False, **kwargs)
    return [image_processor, tokenizer]
