"""``SceneConfig``: the knobs of the scene generator, checked where they enter."""

from __future__ import annotations

from dataclasses import dataclass

MIN_IMAGE_SIZE = 32  # below this a small shape is under 5 px and stops being recognisable
MAX_IMAGE_SIZE = 1024
MAX_OBJECTS = 8  # the captions spell counts as words up to "eight"


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[low, high]``, else raise ``ValueError`` naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")
    return value


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn.

    ``image_size``: side of the square image in pixels. ``min_objects``/``max_objects``: how many
    objects a scene asks for (an object that finds no place is dropped, so a scene may hold fewer).
    ``min_visible``: share of each object's pixels that must stay visible after later objects are
    drawn over it. ``placement_tries``: random positions tried per object before dropping it.
    """

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 6
    min_visible: float = 0.6
    placement_tries: int = 30

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        check_int("min_objects", self.min_objects, 1, MAX_OBJECTS)
        check_int("max_objects", self.max_objects, self.min_objects, MAX_OBJECTS)
        check_int("placement_tries", self.placement_tries, 1)
        if not isinstance(self.min_visible, (int, float)) or not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be a number in (0, 1], got {self.min_visible!r}")
