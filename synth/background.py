"""Noisy gradient backgrounds: varied enough that a model cannot key on flat colour, never near an object colour."""

from __future__ import annotations

import numpy as np

from .world import BACKGROUND_JITTER, RGB

_MAX_GRADIENT = 14  # peak |offset| of the linear ramp, per channel
_MAX_NOISE = BACKGROUND_JITTER - _MAX_GRADIENT  # per-pixel uniform noise in [-_MAX_NOISE, _MAX_NOISE]


def make_background(rng: np.random.Generator, base: RGB, size: int) -> np.ndarray:
    """A ``size`` x ``size`` background around ``base`` → uint8 ``[size, size, 3]``.

    A linear ramp in a random direction plus independent per-channel noise; every channel stays
    within ``BACKGROUND_JITTER`` of ``base``.
    """
    angle = rng.uniform(0.0, 2.0 * np.pi)
    amplitude = rng.uniform(0.3, 1.0) * _MAX_GRADIENT
    ramp = (np.arange(size) + 0.5) / size * 2.0 - 1.0  # [-1, 1] across the image
    gradient = amplitude * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]) / np.sqrt(2.0)
    noise = rng.integers(-_MAX_NOISE, _MAX_NOISE + 1, size=(size, size, 3), dtype=np.int16)
    image = np.asarray(base, dtype=np.int16) + np.rint(gradient).astype(np.int16)[:, :, None] + noise
    return np.clip(image, 0, 255).astype(np.uint8)
