"""What flows between the VESL stages, and the three replaceable stage interfaces.

Any object with the right ``__call__`` is a stage: the transformers-backed classes in ``captioner.py`` and
``detector.py``, the phrase extractors in ``phrases.py``, or a plain Python function (tests script oracle
stages this way).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PIL import Image


@dataclass(frozen=True)
class Captions:
    """A generated ``short`` (one sentence) and ``long`` (detailed) caption of one image; either may be ``""``."""

    short: str
    long: str


@dataclass(frozen=True)
class Detection:
    """One detected region: ``box`` pixel xyxy of the image that was given (display orientation), its
    ``score`` in [0, 1] and the query ``phrase`` it scored highest for."""

    box: tuple[float, float, float, float]
    score: float
    phrase: str


@runtime_checkable
class Captioner(Protocol):
    """``images`` (RGB, any sizes) → one ``Captions`` per image, in order."""

    def __call__(self, images: Sequence[Image.Image]) -> list[Captions]: ...


@runtime_checkable
class PhraseExtractor(Protocol):
    """One text → its noun phrases as written (cleaning and capping happen in ``phrases.select_queries``)."""

    def __call__(self, text: str) -> list[str]: ...


@runtime_checkable
class Detector(Protocol):
    """``images`` and per-image text ``queries`` → per-image detections (boxes in that image's pixels)."""

    def __call__(self, images: Sequence[Image.Image], queries: Sequence[Sequence[str]]) -> list[list[Detection]]: ...


PYTHON_PREFIX = "python:"


def load_python_stage(spec: str, name: str) -> Callable[..., Any]:
    """``python:package.module:factory`` → ``factory()``, which must return a callable stage."""
    target = spec[len(PYTHON_PREFIX) :]
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--{name} {spec!r}: expected python:package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--{name} {spec!r}: {e}") from e
    stage = factory()
    if not callable(stage):
        raise ValueError(f"--{name} {spec!r}: the factory returned a {type(stage).__name__}, not a callable")
    return stage
