"""``LoclipImageProcessor``: letterbox images and map boxes with the same geometry (PIL/numpy, no torchvision).

Pipeline per image: any input → RGB in display orientation (``image_loading.to_rgb``) → resize the long side
to ``image_size`` (bicubic) → rescale and normalise → pad bottom/right to a square with the mean colour,
which is 0 after normalisation. The resized size is ``boxes.Letterbox(h, w, image_size)``'s, so pixels and
boxes share one geometry; ``preprocess_boxes``/``post_process_boxes`` map boxes in and out of that frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs

from loclip.core.image_loading import flatten_images, open_image, to_rgb

from . import boxes as bx
from .boxes import as_float_boxes
from .detection_post import DEFAULT_MAX_DETECTIONS, DEFAULT_NMS_IOU, DEFAULT_THRESHOLD, post_process_detections

_SAVED_KEYS = {"image_processor_type", "processor_class", "feature_extractor_type"}  # written by to_dict, not options


class LoclipImagesKwargs(ImagesKwargs, total=False):
    image_size: int | None


class LoclipImageProcessor(BaseImageProcessor):
    r"""Letterbox images to ``[3, image_size, image_size]`` and map boxes into and out of that frame.

    Args:
        image_size: side of the square model input; the long side is resized to it.
        resample: PIL resampling filter (default bicubic).
        do_rescale / rescale_factor: multiply pixels by ``rescale_factor`` (1/255).
        do_normalize / image_mean / image_std: ``(x - mean) / std`` per channel (CLIP defaults).

    The geometry and normalisation are fixed at construction (not per call) so that boxes converted
    with this processor always match its pixels.
    """

    valid_kwargs = LoclipImagesKwargs
    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = 224,
        resample: int = PILImageResampling.BICUBIC,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        **kwargs: Any,
    ) -> None:
        for key in _SAVED_KEYS:
            kwargs.pop(key, None)
        unknown = sorted(set(kwargs) - {"auto_map"})
        if unknown:
            raise TypeError(f"LoclipImageProcessor got unexpected arguments {unknown} (its output size is image_size)")
        super().__init__(**kwargs)
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if not isinstance(resample, int) or resample not in {int(r) for r in PILImageResampling}:
            raise ValueError(f"resample must be a PIL resampling filter, got {resample!r}")
        self.image_size = image_size
        self.resample = int(resample)
        self.do_rescale = bool(do_rescale)
        self.rescale_factor = float(rescale_factor)
        self.do_normalize = bool(do_normalize)
        self.image_mean = _three_floats(image_mean, "image_mean")
        self.image_std = _three_floats(image_std, "image_std")
        if min(self.image_std) <= 0:
            raise ValueError(f"image_std must be positive, got {self.image_std}")

    @property
    def size(self) -> dict[str, int]:
        """Output size as transformers' size dict (read-only; set ``image_size``)."""
        return {"height": self.image_size, "width": self.image_size}

    crop_size = size  # LlavaProcessor reads crop_size to count image tokens

    def fetch_images(self, image_url_or_urls: Any) -> Any:
        """Open file paths (local only: no URL fetching); other inputs pass through to ``preprocess``."""
        if isinstance(image_url_or_urls, (list, tuple)):
            return [self.fetch_images(x) for x in image_url_or_urls]
        if isinstance(image_url_or_urls, (str, os.PathLike)):
            return open_image(image_url_or_urls, "images")
        return image_url_or_urls

    def preprocess(
        self, images: Any, return_tensors: str | None = "pt", return_original_sizes: bool = False, **kwargs: Any
    ) -> BatchFeature:
        """Images (one, a list, or a 4-D batch) → ``pixel_values`` float32 ``[B, 3, S, S]``, and with
        ``return_original_sizes`` also ``original_sizes`` long ``[B, 2]`` as (height, width) after EXIF
        orientation. Off by default: a plain ``LlavaProcessor`` hands every key to ``generate``, which
        rejects unknown ones; ``LoclipProcessor`` asks for them.

        Per-call options are refused (``None`` values and ``do_convert_rgb=True`` are accepted and ignored, as
        transformers' processors may pass them): build another processor to change the geometry.
        """
        given = sorted(k for k, v in kwargs.items() if v is not None and not (k == "do_convert_rgb" and v))
        if given:
            raise ValueError(
                f"LoclipImageProcessor.preprocess takes no per-call options, got {given}; "
                f"set them when building the processor (image_size={self.image_size})"
            )
        rgb = [to_rgb(image, f"images[{i}]") for i, image in enumerate(flatten_images(images))]
        data = {"pixel_values": np.stack([self._letterbox(image) for image in rgb])}
        if return_original_sizes:
            data["original_sizes"] = np.array([[image.height, image.width] for image in rgb], dtype=np.int64)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _letterbox(self, image: Image.Image) -> np.ndarray:
        """RGB image → float32 ``[3, S, S]``: resized to the Letterbox size, then padded with the mean colour."""
        S = self.image_size
        geometry = bx.Letterbox(image.height, image.width, S)
        h, w = geometry.resized_height, geometry.resized_width
        x = np.asarray(image.resize((w, h), resample=self.resample), dtype=np.float32)  # [h, w, 3]
        mean = np.asarray(self.image_mean, dtype=np.float32)
        if self.do_rescale:
            x = x * np.float32(self.rescale_factor)
        if self.do_normalize:
            x = (x - mean) / np.asarray(self.image_std, dtype=np.float32)
            fill = np.zeros(3, dtype=np.float32)  # the mean colour normalises to 0
        else:
            fill = mean if self.do_rescale else mean / np.float32(self.rescale_factor)  # mean colour in x's units
        out = np.empty((S, S, 3), dtype=np.float32)
        out[...] = fill
        out[:h, :w] = x
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def preprocess_boxes(
        self, boxes: Any, original_sizes: Any, clip_boxes: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel xyxy boxes of the original images → model-frame boxes, padded to the longest list.

        Args:
            boxes: one list (or ``[R_i, 4]`` array) of pixel xyxy boxes per image, in the image after EXIF
                orientation; or one ``[B, R, 4]`` array.
            original_sizes: ``[B, 2]`` (height, width), e.g. ``preprocess(...)["original_sizes"]``.
            clip_boxes: clip every box to the image instead of refusing those more than ``boxes.EDGE_TOLERANCE``
                pixels outside it (boxes within it are clipped either way).
        Returns:
            ``boxes`` float32 ``[B, R, 4]`` normalised xyxy (zero rows where padded) and ``box_mask`` bool ``[B, R]``.
        """
        sizes = _sizes(original_sizes)
        converted = [
            bx.pixel_to_model(_inside(t, size, clip_boxes, f"boxes[{i}]"), size, self.image_size).float()
            for i, (t, size) in enumerate(zip(_box_lists(boxes, len(sizes)), sizes))
        ]
        R = max((len(t) for t in converted), default=0)
        out = torch.zeros(len(converted), R, 4)
        mask = torch.zeros(len(converted), R, dtype=torch.bool)
        for i, t in enumerate(converted):
            out[i, : len(t)] = t
            mask[i, : len(t)] = True
        return out, mask

    def post_process_boxes(
        self, boxes: Any, original_sizes: Any, box_mask: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Model-frame normalised xyxy boxes → pixel xyxy boxes of each original image (clamped to it).

        Args:
            boxes: ``[B, R, 4]`` tensor or a list of ``[R_i, 4]``.
            original_sizes: ``[B, 2]`` (height, width) tensor or list of pairs.
            box_mask: optional bool ``[B, R]``; rows where it is False (padding) are dropped.
        Returns:
            list of B float32 tensors ``[R_i, 4]``.
        """
        sizes = _sizes(original_sizes)
        per_image = _box_lists(boxes, len(sizes))
        if box_mask is not None:
            mask = torch.as_tensor(box_mask, dtype=torch.bool)
            if mask.shape != (len(sizes), max((len(t) for t in per_image), default=0)):
                raise ValueError(f"box_mask must have shape [B, R] matching boxes, got {tuple(mask.shape)}")
            per_image = [t[m[: len(t)]] for t, m in zip(per_image, mask)]
        return [bx.model_to_pixel(t, size, self.image_size).float() for t, size in zip(per_image, sizes)]

    def post_process_object_detection(
        self,
        outputs: Any,
        threshold: float = DEFAULT_THRESHOLD,
        target_sizes: Any = None,
        nms_iou: float = DEFAULT_NMS_IOU,
        max_detections: int = DEFAULT_MAX_DETECTIONS,
    ) -> list[dict[str, torch.Tensor]]:
        """A ``LoclipForObjectDetection`` output (``scores`` ``[B, Q, K]``, ``pred_boxes`` ``[B, Q, K, 4]``) → per
        image ``{"scores", "labels" (query index), "boxes"}``: thresholded, NMS per query, best first, boxes in
        pixels of ``target_sizes`` ``[B, 2]`` (height, width) or normalised without
        (``loclip.encoder.detection_post.post_process_detections``). transformers' zero-shot-object-detection
        pipeline calls this."""
        return post_process_detections(
            outputs["scores"], outputs["pred_boxes"], threshold, target_sizes, self.image_size, nms_iou, max_detections
        )


def _inside(boxes: torch.Tensor, size: tuple[int, int], clip: bool, name: str) -> torch.Tensor:
    """Pixel xyxy ``[R, 4]`` of the image of ``size`` (h, w) by the one box rule (``boxes.check_in_image``: within
    ``EDGE_TOLERANCE`` of the image clipped to it, beyond refused), or all clipped to it if ``clip``."""
    if not clip:
        return bx.check_in_image(boxes, size, name, "; pass clip_boxes=True to clip boxes to the image instead")
    bx.check_xyxy_order(boxes, name)
    clipped = bx.clip_to_size(boxes, size)
    empty = bx.box_area(clipped) <= 0
    if empty.any():
        box = boxes[int(empty.nonzero()[0])].tolist()
        raise ValueError(f"{name}: box {box} has zero area once clipped to the image of (height, width) = {size}")
    return clipped


def _three_floats(values: Sequence[float], name: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be 3 numbers (one per RGB channel), got {values!r}") from e
    if len(out) != 3:
        raise ValueError(f"{name} must be 3 numbers (one per RGB channel), got {values!r}")
    return out


def _sizes(original_sizes: Any) -> list[tuple[int, int]]:
    """``[B, 2]`` (height, width) as tensor, array or list of pairs → list of int pairs."""
    try:
        a = np.asarray(original_sizes.cpu() if isinstance(original_sizes, torch.Tensor) else original_sizes)
    except (TypeError, ValueError) as e:
        raise ValueError(f"original_sizes must be [B, 2] (height, width) pairs, got {original_sizes!r}") from e
    if a.ndim != 2 or a.shape[1] != 2 or not np.issubdtype(a.dtype, np.number) or (a.size and a.min() < 1):
        raise ValueError(f"original_sizes must be [B, 2] positive (height, width) pairs, got {original_sizes!r}")
    return [(int(h), int(w)) for h, w in a]


def _box_lists(boxes: Any, num_images: int) -> list[torch.Tensor]:
    """One box list per image → list of float tensors ``[R_i, 4]``, with errors that name ``boxes``."""
    if isinstance(boxes, (torch.Tensor, np.ndarray)):
        if boxes.ndim != 3:
            raise ValueError(f"boxes given as one array must have shape [B, R, 4], got {tuple(boxes.shape)}")
    elif not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes must be a list with one list of xyxy boxes per image, got {type(boxes).__name__}")
    if len(boxes) != num_images:
        raise ValueError(f"boxes has {len(boxes)} box lists but there are {num_images} images (one list per image)")
    out = []
    for i, entry in enumerate(boxes):
        t = as_float_boxes(entry, f"boxes[{i}]")
        if t.dim() != 2:
            raise ValueError(
                f"boxes[{i}] must be a list of [x1, y1, x2, y2] boxes (shape [R, 4]), got shape {tuple(t.shape)}; "
                "for one image with one box pass [[[x1, y1, x2, y2]]]"
            )
        out.append(t)
    return out
