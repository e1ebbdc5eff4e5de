"""Any image input → one RGB PIL image in display orientation (what ``LoclipImageProcessor`` resizes).

Accepted: PIL images of any mode, file paths, numpy arrays ``(H, W)``/``(H, W, C)`` (or ``(C, H, W)``) and
torch tensors ``(C, H, W)``/``(H, W, C)``/``(H, W)``; a 4-D array or tensor is a batch. Integer arrays must
hold 0..255, float arrays 0..1. Anything else raises ``TypeError``/``ValueError`` naming the input.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white, as transformers' convert_to_rgb does
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
_CHANNELS = (1, 2, 3, 4)  # L, LA, RGB, RGBA


def open_image(path: str | os.PathLike, name: str) -> Image.Image:
    """Read an image file fully (so the file is closed); local paths only, never a URL."""
    if not os.path.isfile(path):
        raise ValueError(f"{name} must be an image or the path of an existing image file, got {str(path)!r}")
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, Image.DecompressionBombError) as e:
        raise ValueError(f"{name}: cannot read image file {str(path)!r}: {e}") from e
    return image


def flatten_images(images: Any, name: str = "images") -> list[Any]:
    """One image, a list of images, a list of lists (flattened once) or a 4-D batch → flat list."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError(f"{name} is empty: pass at least one image")
    flat: list[Any] = []
    for item in items:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    out: list[Any] = []
    for item in flat:  # a 4-D array or tensor is a batch of 3-D images
        is_batch = isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 4
        out.extend(list(item) if is_batch else [item])
    return out


def to_rgb(image: Any, name: str = "image") -> Image.Image:
    """One image of any supported kind → RGB PIL image, EXIF orientation applied, alpha on ``BACKGROUND``."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image, name)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(image), name)
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        t = t.float() if t.dtype == torch.bfloat16 else t  # numpy has no bfloat16
        return _pil_to_rgb(_array_to_pil(t.numpy(), name, channels_first=True), name)
    if isinstance(image, np.ndarray):
        return _pil_to_rgb(_array_to_pil(image, name, channels_first=False), name)
    raise TypeError(
        f"{name} must be a PIL image, numpy array, torch tensor or image file path, got {type(image).__name__}"
    )


def _pil_to_rgb(image: Image.Image, name: str) -> Image.Image:
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{name} is empty: (height, width) = ({image.height}, {image.width})")
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):  # PIL would clip these to 255, not rescale them
        return Image.fromarray(_deep_to_uint8(np.asarray(image), mode)).convert("RGB")
    if mode == "RGB":
        return image
    try:
        if "A" in mode or "a" in mode or "transparency" in image.info:
            rgba = image.convert("RGBA")
            out = Image.new("RGB", image.size, BACKGROUND)
            out.paste(rgba, mask=rgba.getchannel("A"))
            return out
        return image.convert("RGB")
    except ValueError as e:
        raise ValueError(f"{name}: cannot convert PIL mode {mode!r} to RGB") from e


def _deep_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit and float pixels → uint8.

    ``I;16*`` is 16-bit; ``I`` is read as 16-bit if any value exceeds 255, else as 8-bit;
    ``F`` is read as 0..1 if all values lie there, else as 0..255 (clipped).
    """
    a = a.astype(np.float64)
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and a.max() > 255):
        a = np.clip(a, 0, 65535) / 257.0
    elif mode == "F" and a.min() >= 0 and a.max() <= 1:
        a = a * 255.0
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _array_to_pil(a: np.ndarray, name: str, channels_first: bool) -> Image.Image:
    """``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` → PIL; ``channels_first`` breaks ties like ``(3, 5, 3)``."""
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must be an image array of shape (H, W), (H, W, C) or (C, H, W), got {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: shape {a.shape}")
    if a.ndim == 3:
        chw, hwc = a.shape[0] in _CHANNELS, a.shape[-1] in _CHANNELS
        if chw and (channels_first or not hwc):
            a = np.moveaxis(a, 0, -1)
        elif not hwc:
            raise ValueError(f"{name} must have 1 to 4 channels (first or last axis), got shape {a.shape}")
        if a.shape[-1] == 1:
            a = a[..., 0]
    return Image.fromarray(np.ascontiguousarray(_array_to_uint8(a, name)))


def _array_to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"{name}: integer pixels must lie in 0..255, got {a.min()}..{a.max()}")
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ValueError(f"{name}: float pixels must lie in [0, 1], got {a.min()}..{a.max()}")
        return np.round(a * 255).astype(np.uint8)
    raise TypeError(f"{name}: pixels must be uint8, integer or float, got dtype {a.dtype}")
