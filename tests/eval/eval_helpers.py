"""Helpers of the eval tests (imported by name, this folder being on sys.path like ``tests/label``'s helpers):
a colour model whose embeddings are known by construction, painted images and mask PNGs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CONTEXT = 24  # text context of the tiny models (tokens)

# Pure colours: with the processor's mean = std = 0.5 a pixel normalises to ±1 per channel, so red is (1, -1, -1),
# and any two of red, green, blue have cosine -1/3.
PURE = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}
PATCH = 8


class ColourModel(torch.nn.Module):
    """A stand-in for LoclipModel (D = 3) whose embeddings are known by construction: a patch's embedding is its
    mean normalised pixel, an image's the mean over the whole letterboxed input (the padding is 0, so only the
    image's pixels count), a text's the sum of its colour words' pixel vectors (other words count 0).

    Everything around it is the real code: processor (letterbox, normalisation, original sizes), prompt groups,
    text averaging, class scores, upsampling, masks and metrics."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        self.config = SimpleNamespace(projection_dim=3, text_config=SimpleNamespace(max_position_embeddings=CONTEXT))
        table = torch.zeros(len(tokenizer), 3)
        for word, rgb in PURE.items():
            table[tokenizer.convert_tokens_to_ids(word)] = torch.tensor(rgb) / 127.5 - 1
        self.register_buffer("table", table)

    @property
    def device(self) -> torch.device:
        return self.table.device

    def get_patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` → ``[B, S/8, S/8, 3]``."""
        return F.avg_pool2d(pixel_values, PATCH).permute(0, 2, 3, 1)

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pixel_values.mean((2, 3))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return (self.table[input_ids] * attention_mask[..., None]).sum(1)


def paint(height: int, width: int, blocks: list[tuple[slice, slice, str]]) -> Image.Image:
    """An RGB image of ``PURE`` colour blocks ``(rows, columns, colour)`` on black."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    for rows, cols, colour in blocks:
        pixels[rows, cols] = PURE[colour]
    return Image.fromarray(pixels)


def write_mask(path: Path, values: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8)).convert(mode).save(path)
