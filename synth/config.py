"""``SceneConfig``: the knobs of the scene generator, checked where they enter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from loclip.core.recipe import CheckedConfig, PositiveInt, at_least, between, check_value, option

MIN_IMAGE_SIZE = 32  # below this a small shape is under 5 px and stops being recognisable
MAX_IMAGE_SIZE = 1024
MAX_OBJECTS = 8  # the captions spell counts as words up to "eight"


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[low, high]``, else raise ``ValueError`` naming ``name``."""
    return check_value(name, value, Annotated[int, at_least(low) if high is None else between(low, high)])


@dataclass(frozen=True)
class SceneConfig(CheckedConfig):
    """How scenes are drawn (``loclip-synth``'s ``--scene.*`` flags), checked once, when built.

    ``image_size``: side of the square image in pixels. ``min_objects``/``max_objects``: how many
    objects a scene asks for (an object that finds no place is dropped, so a scene may hold fewer).
    ``min_visible``: share of each object's pixels that must stay visible after later objects are
    drawn over it. ``placement_tries``: random positions tried per object before dropping it.
    """

    image_size: Annotated[int, between(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)] = option(64, "image side in pixels")
    min_objects: Annotated[int, between(1, MAX_OBJECTS)] = option(1, "fewest objects a scene asks for")
    max_objects: Annotated[int, between(1, MAX_OBJECTS)] = option(6, "most objects a scene asks for")
    min_visible: Annotated[float, between(0, 1, low_open=True)] = option(
        0.6, "share of an object's pixels that must stay visible under later objects"
    )
    placement_tries: PositiveInt = option(30, "random positions tried per object before dropping it")

    def validate(self) -> None:
        if self.max_objects < self.min_objects:
            raise ValueError(f"max_objects = {self.max_objects}: expected >= min_objects ({self.min_objects})")
