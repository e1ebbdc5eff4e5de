"""The scene's words: short and long captions, referring and grounding turns.

Everything said is computed from the drawn objects (their attributes and tight boxes), so the text
is true of the pixels. Grounding turns only ever name an object by a description that fits it alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .config import MAX_OBJECTS
from .objects import FULL_FORM, SceneObject, unique_forms
from .world import BACKGROUNDS, COLOURS, SHAPES, SIZES

NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
assert len(NUMBER_WORDS) > MAX_OBJECTS

# Thirds of the image (rows top→bottom, columns left→right) → where an object's box centre is.
POSITIONS: tuple[tuple[str, ...], ...] = (
    ("in the top left", "at the top", "in the top right"),
    ("on the left", "in the centre", "on the right"),
    ("in the bottom left", "at the bottom", "in the bottom right"),
)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
RELATION_MARGIN = 0.15  # a relation is stated only when the centres differ by this share of the image

# Templates: every sentence the world says is one of these, filled with names from world.py.
SHORT_CAPTION = "{count} {noun} on a {background} background"
OBJECT_SENTENCE = "A {phrase} is {position}."
RELATION_SENTENCE = "The {a} is {relation} the {b}."
BACKGROUND_SENTENCE = "The background is {background}."
REFER_ANSWER = "a {phrase}"
REFER_QUESTIONS: tuple[str, ...] = ("What is in <region>?", "What object is in <region>?")
GROUND_QUESTIONS: tuple[str, ...] = ("Where is the {}?", "Find the {}.")
SHORT_QUESTION = "Describe the image briefly."
LONG_QUESTION = "Describe the image."

TurnKind = Literal["caption", "refer", "ground"]


@dataclass(frozen=True)
class Turn:
    """One question/answer pair about a scene.

    ``target``: the object the turn is about: for ``refer`` the box behind the question's
    ``<region>``, for ``ground`` the box that answers it (``answer`` is then ``None``: box text is
    rendered by the conversation builder, in the model frame). ``None`` for ``caption``.
    """

    kind: TurnKind
    question: str
    answer: str | None
    target: int | None


@dataclass(frozen=True)
class SceneText:
    """A scene's captions and question/answer turns (turns in conversation order)."""

    caption: str
    long_caption: str
    turns: tuple[Turn, ...]


def short_caption(count: int, background: str) -> str:
    """``"four shapes on a grey background"``."""
    noun = "shape" if count == 1 else "shapes"
    return SHORT_CAPTION.format(count=NUMBER_WORDS[count], noun=noun, background=background)


def position(obj: SceneObject, image_size: int) -> str:
    """Which third of the image (row and column) holds the object's box centre."""
    cx, cy = obj.centre
    col, row = (min(int(3 * v / image_size), 2) for v in (cx, cy))
    return POSITIONS[row][col]


def relation(a: SceneObject, b: SceneObject, image_size: int) -> str | None:
    """How ``a`` lies relative to ``b`` along the axis where their centres differ most, if clearly."""
    dx, dy = (pa - pb for pa, pb in zip(a.centre, b.centre))
    if max(abs(dx), abs(dy)) < RELATION_MARGIN * image_size:
        return None
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _relation_name(obj: SceneObject, forms: list[tuple[str, ...]]) -> str | None:
    """A name from ``forms`` (those naming ``obj`` alone), preferring "colour shape"; ``None`` for twins."""
    for form in (("colour", "shape"), FULL_FORM):
        if form in forms:
            return obj.name(form)
    return None


def long_caption(objects: tuple[SceneObject, ...], background: str, image_size: int, rng: np.random.Generator) -> str:
    """One sentence per object (where it is), then relations between objects, then the background."""
    sentences = [OBJECT_SENTENCE.format(phrase=o.phrase, position=position(o, image_size)) for o in objects]
    names = [_relation_name(o, forms) for o, forms in zip(objects, unique_forms(objects))]
    for k in range(1, len(objects)):
        j = int(rng.integers(k))  # relate each object to a random earlier one
        a, b = names[k], names[j]
        rel = relation(objects[k], objects[j], image_size)
        if a and b and rel:
            sentences.append(RELATION_SENTENCE.format(a=a, relation=rel, b=b))
    sentences.append(BACKGROUND_SENTENCE.format(background=background))
    return " ".join(sentences)


def describe_scene(
    objects: tuple[SceneObject, ...], background: str, image_size: int, rng: np.random.Generator
) -> SceneText:
    """Captions and turns for a scene: a caption turn, one referring turn per object, and one
    grounding turn per object that some description fits alone; turns in random order."""
    caption = short_caption(len(objects), background)
    long = long_caption(objects, background, image_size, rng)
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    turns = [pick((Turn("caption", SHORT_QUESTION, caption, None), Turn("caption", LONG_QUESTION, long, None)))]
    for k, (obj, forms) in enumerate(zip(objects, unique_forms(objects))):
        turns.append(Turn("refer", pick(REFER_QUESTIONS), REFER_ANSWER.format(phrase=obj.phrase), k))
        if forms:
            turns.append(Turn("ground", pick(GROUND_QUESTIONS).format(obj.name(pick(forms))), None, k))
    order = rng.permutation(len(turns))
    return SceneText(caption, long, tuple(turns[i] for i in order))


def vocabulary() -> list[str]:
    """Every word the world's language can produce (lower case, sorted), without punctuation,
    special tokens or box numbers (the tokenizer adds those)."""
    texts = [
        *SHAPES,
        *COLOURS,
        *SIZES,
        *BACKGROUNDS,
        *NUMBER_WORDS,
        *RELATIONS,
        *REFER_QUESTIONS,
        *GROUND_QUESTIONS,
        *(p for row in POSITIONS for p in row),
        "shape shapes",
        SHORT_QUESTION,
        LONG_QUESTION,
        SHORT_CAPTION,
        OBJECT_SENTENCE,
        RELATION_SENTENCE,
        BACKGROUND_SENTENCE,
        REFER_ANSWER,
    ]
    words = set()
    for text in texts:  # drop {placeholders} and <special> tokens, keep the words around them
        words.update(re.findall(r"[a-z]+", re.sub(r"<[a-z]+>|\{[a-z]*\}", " ", text.lower())))
    return sorted(words)
