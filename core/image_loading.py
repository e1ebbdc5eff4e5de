"""Any image input → one RGB PIL image in display orientation (what ``LoclipImageProcessor`` resizes), and
the one way loclip opens an image file or image bytes that a user hands it.

Accepted: PIL images of any mode, file paths, numpy arrays ``(H, W)``/``(H, W, C)`` (or ``(C, H, W)``) and
torch tensors ``(C, H, W)``/``(H, W, C)``/``(H, W)``; a 4-D array or tensor is a batch. Integer arrays must
hold 0..255, float arrays 0..1. Anything else raises ``TypeError``/``ValueError`` naming the input.

Files and bytes go through ``open_raster``: only the raster formats of ``RASTER_FORMATS`` are tried (PIL's
EPS, PDF and other plugins would run Ghostscript or read more than pixels), and the pixel count is read
from the header and checked before anything is decoded (a 20 KB PNG can decode to gigabytes).
``resolve_image_path`` keeps a data file's image paths to regular files inside its image folder.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageOps

from .messages import shown, shown_path

BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white, as transformers' convert_to_rgb does
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
_CHANNELS = (1, 2, 3, 4)  # L, LA, RGB, RGBA


RASTER_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")  # PIL format names; JPEG includes MPO
RASTER_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
DEFAULT_MAX_PIXELS = 64_000_000  # width x height; 8000 x 8000 and larger is refused unless a caller allows it


class ImageRefused(ValueError):
    """An image file or bytes loclip will not decode; ``reason`` is a short code for skip counts."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ImageTooLarge(ImageRefused):
    """More pixels than allowed, found from the header before decoding; ``size`` is (width, height), or
    ``None`` when PIL's own bomb guard stopped the header read first."""

    def __init__(self, message: str, size: tuple[int, int] | None) -> None:
        super().__init__(message, "image_too_large")
        self.size = size


def open_raster(
    source: str | os.PathLike | bytes | IO[bytes], name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode an image file (path or open file) or bytes with PIL's raster decoders only → a loaded PIL image.

    ``ImageTooLarge`` when the header says more than ``max_pixels`` (``None``: no limit); ``ImageRefused``
    (reason ``image_format``) for a file that is no image in ``RASTER_FORMATS``, or ``image_unreadable`` for a
    truncated or corrupt one. Every message names ``name``.
    """
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():  # PIL's bomb warning: the check below is ours
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=RASTER_FORMATS)
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLarge(
                    f"{name}: {width} x {height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (checked before decoding)",
                    (width, height),
                )
            image.load()
    except ImageRefused:
        raise
    except Image.DecompressionBombError as e:  # over twice PIL's own limit: refused before our check
        raise ImageTooLarge(f"{name}: {e} (checked before decoding)", None) from e
    except Image.UnidentifiedImageError as e:
        raise ImageRefused(
            f"{name}: not an image in an allowed format ({', '.join(RASTER_FORMATS)})", "image_format"
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageRefused(f"{name}: cannot decode the image (corrupt or truncated): {e}", "image_unreadable") from e
    return image


def resolve_image_path(root: str | os.PathLike, relative: Any, name: str) -> Path:
    """``root / relative`` after checking that it names a regular file inside ``root`` (symbolic links
    resolved): no device (``/dev/zero``), FIFO or directory, nothing outside. ``ImageRefused`` with reason
    ``image_path`` / ``image_outside_root`` / ``image_missing`` / ``image_not_a_file`` otherwise."""
    if not isinstance(relative, str) or not relative.strip():
        raise ImageRefused(f"{name}: image path must be a non-empty string, got {shown(relative)}", "image_path")
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise ImageRefused(
            f"{name}: image path {shown_path(relative)} leads outside the image folder {shown_path(base)}",
            "image_outside_root",
        )
    try:
        mode = path.stat().st_mode  # never opens the file: a FIFO cannot block here
    except OSError:
        raise ImageRefused(
            f"{name}: image file {shown_path(relative)} does not exist under {shown_path(base)}", "image_missing"
        ) from None
    if not stat.S_ISREG(mode):
        raise ImageRefused(f"{name}: image path {shown_path(relative)} is not a regular file", "image_not_a_file")
    return path


def open_image(path: str | os.PathLike, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read a local image file fully (so the file is closed) through ``open_raster``; never a URL."""
    if not os.path.isfile(path):
        raise ValueError(f"{name} must be an image or the path of an existing image file, got {str(path)!r}")
    return open_raster(path, name, max_pixels)


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
