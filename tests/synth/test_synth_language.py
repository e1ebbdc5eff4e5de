"""The world's text: captions name exactly the drawn objects, relations and grounding targets are true,
and the tokenizer covers every word."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer

from loclip.encoder import boxes
from loclip.encoder.box_text import parse_boxes
from loclip.synth import COLOURS, SHAPES, SIZES, Scene, SceneObject, build_tokenizer, conversation_record

NUMBERS = "zero one two three four five six seven eight".split()
WORD = "|".join
OBJECT = re.compile(rf"^A ({WORD(SIZES)}) ({WORD(COLOURS)}) ({WORD(SHAPES)}) is (in|at|on) the (.+)\.$")
RELATION = re.compile(r"^The (.+) is (left of|right of|above|below) the (.+)\.$")
GROUND = re.compile(r"^(?:<image>\n)?(?:Where is the (.+)\?|Find the (.+)\.)$")
SHORT = re.compile(r"^(\w+) shapes? on a (\w+) background$")


def _matches(name: str, obj: SceneObject) -> bool:
    """Does a name like "blue star" / "small star" fit the object? Every word must be one of its attributes."""
    words = name.split()
    return words[-1] == obj.shape and all(w in (obj.size, obj.colour) for w in words[:-1])


# Where a caption says an object is → (row, column) third of the image holding its box centre.
POSITIONS = {
    "top left": (0, 0),
    "top": (0, 1),
    "top right": (0, 2),
    "left": (1, 0),
    "centre": (1, 1),
    "right": (1, 2),
    "bottom left": (2, 0),
    "bottom": (2, 1),
    "bottom right": (2, 2),
}


def test_captions_describe_exactly_the_drawn_objects(scenes: list[Scene]) -> None:
    for scene in scenes:
        count, background = SHORT.match(scene.text.caption).groups()  # type: ignore[union-attr]
        assert NUMBERS.index(count) == len(scene.objects) and background == scene.background
        sentences = re.split(r"(?<=\.) ", scene.text.long_caption)
        described = [m for m in map(OBJECT.match, sentences) if m]
        assert Counter(" ".join(m.groups()[:3]) for m in described) == Counter(o.phrase for o in scene.objects)
        for m, obj in zip(described, scene.objects):  # sentences follow drawing order
            assert " ".join(m.groups()[:3]) == obj.phrase
            row, col = (min(int(3 * v / scene.size), 2) for v in obj.centre[::-1])
            assert POSITIONS[m.group(5)] == (row, col), (scene.key, m.group(0))
        assert sentences[-1] == f"The background is {scene.background}."


def test_relations_are_true_and_name_single_objects(scenes: list[Scene]) -> None:
    seen = Counter()
    for scene in scenes:
        for sentence in re.split(r"(?<=\.) ", scene.text.long_caption):
            m = RELATION.match(sentence)
            if not m:
                continue
            (a,), (b,) = ([o for o in scene.objects if _matches(n, o)] for n in (m.group(1), m.group(3)))
            (ax, ay), (bx, by) = a.centre, b.centre
            margin = 0.15 * scene.size
            holds = {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}
            assert holds[m.group(2)] >= margin, (scene.key, sentence)
            seen[m.group(2)] += 1
    assert set(seen) == {"left of", "right of", "above", "below"}


def test_referring_and_grounding_turns(scenes: list[Scene]) -> None:
    """Referring answers name the object in the region; grounding names one object only and answers
    with its box (model-frame text that maps back to its pixels within a pixel)."""
    twins = 0
    for scene in scenes:
        record = conversation_record(scene, "x.png")
        turns = record["conversations"]
        assert turns[0]["value"].startswith("<image>\n")
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert sum(t["value"].count("<region>") for t in turns) == len(record["boxes"])
        region_boxes = iter(record["boxes"])
        grounded = set()
        for human, gpt in zip(turns[::2], turns[1::2]):
            if "<region>" in human["value"]:
                box = tuple(next(region_boxes))
                (obj,) = [o for o in scene.objects if o.box == box]
                assert gpt["value"] == f"a {obj.phrase}"
            elif m := GROUND.match(human["value"]):
                name = m.group(1) or m.group(2)
                fits = [o for o in scene.objects if _matches(name, o)]
                assert len(fits) == 1, (scene.key, name)
                (parsed,) = parse_boxes(gpt["value"])
                back = boxes.model_to_pixel(torch.tensor(parsed), (scene.size, scene.size), scene.size)
                assert (back - torch.tensor(fits[0].box, dtype=torch.float32)).abs().max() <= 1.0
                grounded.add(fits[0].phrase)
        phrases = Counter(o.phrase for o in scene.objects)
        twins += any(c > 1 for c in phrases.values())
        assert not grounded & {p for p, c in phrases.items() if c > 1}
        # every object with no twin is grounded (by some name that fits it alone)
        assert grounded == {p for p, c in phrases.items() if c == 1}
    assert twins > 0  # the rule was exercised


def test_tokenizer_covers_every_text(scenes: list[Scene], tmp_path) -> None:  # type: ignore[no-untyped-def]
    build_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    texts = []
    for scene in scenes:
        texts += [scene.text.caption, scene.text.long_caption]
        texts += [t["value"] for t in conversation_record(scene, "x.png")["conversations"]]
    ids = tok(texts)["input_ids"]
    assert all(tok.unk_token_id not in row for row in ids)
    assert all(row[0] == tok.bos_token_id and row[-1] == tok.eos_token_id for row in ids)
    assert max(len(row) for row in ids) <= tok.model_max_length
    assert tok.tokenize("<image>\nWhere is the red star? [12, 0, 999, 5].") == [
        "<image>",
        "where",
        "is",
        "the",
        "red",
        "star",
        "?",
        "[",
        "12",
        ",",
        "0",
        ",",
        "999",
        ",",
        "5",
        "]",
        ".",
    ]
    assert tok.convert_tokens_to_ids("<region>") == tok.region_token_id


@pytest.mark.parametrize("text", ["A Purple Hexagon", "what is in <region>?"])
def test_tokenizer_lower_cases(text: str) -> None:
    tok = build_tokenizer()
    assert tok.unk_token_id not in tok(text)["input_ids"]
