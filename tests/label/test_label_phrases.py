"""Noun phrases → detector queries: the rule-based fallback on fixed sentences, the cleaning rules, the cap,
and spaCy's noun chunks when an English pipeline is installed."""

from __future__ import annotations

import pytest

from loclip.label import RulePhrases, SpacyPhrases, clean_phrase, load_phrase_extractor, select_queries

CASES = [
    ("a red circle to the left of a small blue square", ["red circle", "small blue square"]),
    (
        "A small red circle is in the top left. The red circle is left of the blue square. The background is grey.",
        ["small red circle", "red circle", "blue square"],
    ),
    ("four shapes on a grey background", []),
    ("Stock photo of a golden retriever playing with a red ball in the park", ["golden retriever", "red ball", "park"]),
    ("Two men are sitting on a wooden bench next to the river.", ["men", "wooden bench", "river"]),
    (
        "The image shows a close-up of a cat's face, with green eyes and white whiskers.",
        ["cat's face", "green eyes", "white whiskers"],
    ),
    (
        "A photograph of a kitchen: a stainless-steel fridge, an oven and three wooden chairs near the window",
        ["kitchen", "stainless-steel fridge", "oven", "wooden chairs", "window"],
    ),
    ("There is a dog. It is brown and very small.", ["dog"]),
    # a known limit: a predicative adjective outside the lexicon reads as a noun
    ("The dog is fluffy.", ["dog", "fluffy"]),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_rule_chunker_on_captions(text: str, expected: list[str]) -> None:
    assert select_queries([text], RulePhrases()) == expected


def test_rule_chunker_raw_chunks() -> None:
    """Chunks break at closed-class words and punctuation; cleaning happens later."""
    assert RulePhrases()("A red circle, to the left of a small blue square!") == [
        "red circle",
        "left",
        "small blue square",
    ]
    assert RulePhrases()("") == []


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("The two red circles", "red circles"),
        ("a stock photo", None),
        ("the top left corner", None),
        ("grey", None),
        ("the image", None),
        ("3 apples", "apples"),
        ("it", None),
        ("1984", None),
        ("a very big old red double-decker london bus", "big old red double-decker london bus"),
        ("  Blue   SQUARE ", "blue square"),
    ],
)
def test_clean_phrase(raw: str, cleaned: str | None) -> None:
    assert clean_phrase(raw) == cleaned


def test_select_queries_dedupes_and_caps() -> None:
    texts = ["a red circle and a red circle", "the red circle near a blue star", "a green cross"]
    assert select_queries(texts, RulePhrases()) == ["red circle", "blue star", "green cross"]
    many = " and ".join(f"a thing{i} ball" for i in range(30))
    assert len(select_queries([many], RulePhrases())) == 20  # the default cap
    assert select_queries([many], RulePhrases(), max_queries=3) == ["thing0 ball", "thing1 ball", "thing2 ball"]
    with pytest.raises(ValueError, match="max_queries"):
        select_queries([many], RulePhrases(), max_queries=0)


def test_extractor_is_replaceable() -> None:
    """Any callable text → phrases is an extractor; its output is cleaned the same way."""
    assert select_queries(["ignored"], lambda text: ["The Dog", "a photo", "dog"]) == ["dog"]


def test_load_phrase_extractor_fallback() -> None:
    assert isinstance(load_phrase_extractor("rules"), RulePhrases)
    try:
        import spacy

        spacy.load("en_core_web_sm")
        has_pipeline = True
    except (ImportError, OSError):
        has_pipeline = False
    auto = load_phrase_extractor("auto")
    assert isinstance(auto, SpacyPhrases if has_pipeline else RulePhrases)
    with pytest.raises(ValueError, match="no_such_pipeline"):
        load_phrase_extractor("no_such_pipeline")
    with pytest.raises(ValueError, match="phrases"):
        load_phrase_extractor("")


def test_spacy_noun_chunks() -> None:
    spacy = pytest.importorskip("spacy")
    try:
        extractor = load_phrase_extractor("en_core_web_sm")
    except ValueError:
        pytest.skip("spaCy is installed but its en_core_web_sm pipeline is not")
    assert isinstance(extractor, SpacyPhrases) and spacy is not None
    assert select_queries(["a red circle to the left of a small blue square"], extractor) == [
        "red circle",
        "small blue square",
    ]
