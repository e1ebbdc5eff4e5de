"""``SceneObject``: one drawn object, and the ways language can name it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .layout import Box

# Ways to name an object, shortest first; a name "fits" every object whose attributes it lists.
NAME_FORMS: tuple[tuple[str, ...], ...] = (
    ("shape",),
    ("colour", "shape"),
    ("size", "shape"),
    ("size", "colour", "shape"),
)
FULL_FORM = NAME_FORMS[-1]


@dataclass(frozen=True)
class SceneObject:
    """An object as drawn: attributes and its tight pixel xyxy ``box`` (x2/y2 exclusive)."""

    shape: str
    colour: str
    size: str
    box: Box

    def name(self, form: tuple[str, ...] = FULL_FORM) -> str:
        """The words of ``form``, e.g. ``("colour", "shape")`` → ``"red circle"``."""
        return " ".join(getattr(self, attr) for attr in form)

    @property
    def phrase(self) -> str:
        """The region phrase: ``"small red circle"``."""
        return self.name(FULL_FORM)

    @property
    def centre(self) -> tuple[float, float]:
        """Box centre ``(x, y)`` in pixels."""
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0


def unique_forms(objects: tuple[SceneObject, ...]) -> list[list[tuple[str, ...]]]:
    """Per object, the forms that name it and no other object in the scene (empty for twins)."""
    counts = {form: Counter(o.name(form) for o in objects) for form in NAME_FORMS}
    return [[form for form in NAME_FORMS if counts[form][o.name(form)] == 1] for o in objects]
