"""Noun phrases from captions → the detector's text queries.

Two extractors, one interface (``text -> list[str]``):

- ``SpacyPhrases``: spaCy's ``noun_chunks`` when an English pipeline is installed (``en_core_web_sm`` or any
  name given); the CLOC recipe.
- ``RulePhrases``: the fallback that needs no download. It lower-cases the text, splits it at punctuation and
  at closed-class words (determiners, pronouns, prepositions, conjunctions, auxiliaries and common caption
  verbs from the small lexicons below), and keeps each remaining run of words as a chunk whose last word is the
  head. It is made for caption English ("a red circle to the left of a small blue square" → "red circle",
  "left", "small blue square"); it knows no grammar beyond that, so a verb outside its verb list stays inside
  a chunk ("a man juggling balls" → "man juggling balls") and a predicative adjective outside its adjective
  list reads as a noun ("the dog is fluffy" → "dog", "fluffy"). Install a spaCy pipeline for real-scale runs.

``select_queries`` then cleans and filters whatever an extractor returned (see ``clean_phrase``), removes
duplicates keeping first-seen order and keeps at most ``max_queries``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from .stages import PhraseExtractor

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODEL = "en_core_web_sm"
DEFAULT_MAX_QUERIES = 20
MAX_PHRASE_WORDS = 6  # longer chunks are rarely good detector queries; keep the head and its nearest modifiers

DETERMINERS = frozenset(
    "a an the this that these those some any each every either neither no another other such what which whose "
    "its their his her our my your all both few many several most much more less".split()
)
NUMERALS = frozenset("one two three four five six seven eight nine ten eleven twelve dozen dozens couple pair".split())
PRONOUNS = frozenset(
    "it they them he she him we us you i me one ones there here who whom something someone anything nothing "
    "itself themselves".split()
)
PREPOSITIONS = frozenset(
    "of in on at to with without by from for near behind above below under over between beside besides next "
    "into onto across along around against inside outside among through throughout toward towards upon within "
    "beneath underneath beyond past via like as about after before during atop than".split()
)
CONJUNCTIONS = frozenset("and or but nor so yet while whereas although though because if then also".split())
VERBS = frozenset(
    "is are was were be been being am has have had having do does did can could may might will would shall "
    "should must appears appear seems seem looks look looking shows show showing shown depicts depicting "
    "depicted features featuring featured contains containing sits sitting sat stands standing stood lies lying "
    "lay rests resting placed located positioned set hangs hanging holds holding held wears wearing worn "
    "walks walking runs running plays playing rides riding eats eating covered filled surrounded made "
    "drawn painted displayed visible seen taken captured".split()
)
ADVERBS = frozenset("very quite rather slightly fairly too just only not also almost nearly partly mostly".split())
# Words that end a chunk without being a noun: a chunk whose head is one of these is not a noun phrase.
ADJECTIVES = frozenset(
    "red green blue yellow purple orange white black grey gray brown pink cyan magenta violet beige golden silver "
    "small large big tiny huge little tall short long wide narrow bright dark light pale deep colorful colourful "
    "striped spotted plain empty full open closed round flat old new young".split()
)
# Image-level and web words: never an object in the picture.
GENERIC_WORDS = frozenset(
    "image images photo photos photograph photographs picture pictures pic pics stock illustration illustrations "
    "background backgrounds foreground scene view shot close-up closeup screenshot wallpaper thumbnail clipart "
    "vector rendering render frame copy space copyspace royalty free watermark logo text caption "
    "shape shapes object objects thing things item items".split()
)
# Where-words: "the top left", "the centre", "the left side" are places, not objects a detector can find.
POSITION_WORDS = frozenset(
    "left right top bottom centre center middle side sides corner corners edge edges front back rear "
    "part area half upper lower distance".split()
)
STOPWORDS = DETERMINERS | NUMERALS | PRONOUNS | PREPOSITIONS | CONJUNCTIONS | VERBS | ADVERBS
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_CLAUSE_BREAK = re.compile(r"[.,;:!?()\[\]{}\"]|\s-\s")


class RulePhrases:
    """The download-free noun-chunk fallback (see the module docstring)."""

    def __call__(self, text: str) -> list[str]:
        chunks: list[str] = []
        for clause in _CLAUSE_BREAK.split(text.lower()):
            run: list[str] = []
            for word in _WORD.findall(clause):
                if word in STOPWORDS:
                    if run:
                        chunks.append(" ".join(run))
                    run = []
                else:
                    run.append(word)
            if run:
                chunks.append(" ".join(run))
        return chunks

    def __repr__(self) -> str:
        return "RulePhrases()"


class SpacyPhrases:
    """spaCy ``noun_chunks`` of a loaded pipeline (``nlp``: what ``spacy.load(name)`` returned)."""

    def __init__(self, nlp: Any, name: str = "") -> None:
        self.nlp, self.name = nlp, name

    def __call__(self, text: str) -> list[str]:
        return [chunk.text for chunk in self.nlp(text).noun_chunks]

    def __repr__(self) -> str:
        return f"SpacyPhrases({self.name!r})"


def load_phrase_extractor(name: str = "auto") -> PhraseExtractor:
    """``"rules"``: ``RulePhrases``. ``"auto"``: spaCy's ``en_core_web_sm`` if spaCy and that pipeline are
    installed, else ``RulePhrases`` (logged). Any other name: that spaCy pipeline, or ``ValueError`` saying why not."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"phrases must be 'auto', 'rules' or a spaCy pipeline name, got {name!r}")
    if name == "rules":
        return RulePhrases()
    spacy_name = DEFAULT_SPACY_MODEL if name == "auto" else name
    try:
        import spacy

        nlp = spacy.load(spacy_name, disable=["ner", "lemmatizer"])
    except (ImportError, OSError) as e:  # spaCy missing, or the pipeline not installed
        if name == "auto":
            logger.info("spaCy pipeline %r unavailable (%s); using the rule-based phrase chunker", spacy_name, e)
            return RulePhrases()
        raise ValueError(f"phrases: cannot load spaCy pipeline {name!r}: {e}") from e
    return SpacyPhrases(nlp, spacy_name)


def clean_phrase(phrase: str) -> str | None:
    """A raw chunk → a detector query, or ``None`` to drop it.

    Lower-cased and reduced to words; leading stopwords, determiners and numerals are stripped ("the two red
    circles" → "red circles"); at most ``MAX_PHRASE_WORDS`` words are kept, ending at the head. Dropped: nothing
    left, only stopwords, a head that is an adjective ("grey"), a place ("top left") or a generic/web word
    ("stock photo", "grey background"), and phrases with no letter.
    """
    words = _WORD.findall(phrase.lower())
    while words and (words[0] in STOPWORDS or words[0].isdigit()):
        words.pop(0)
    if not words:
        return None
    head = words[-1]
    if head in GENERIC_WORDS or head in POSITION_WORDS or head in ADJECTIVES or head in STOPWORDS:
        return None
    if not any(c.isalpha() for c in head):
        return None
    return " ".join(words[-MAX_PHRASE_WORDS:])


def select_queries(
    texts: Iterable[str], extractor: PhraseExtractor, max_queries: int = DEFAULT_MAX_QUERIES
) -> list[str]:
    """Noun phrases of ``texts`` (in order) → at most ``max_queries`` cleaned, distinct queries."""
    if not isinstance(max_queries, int) or isinstance(max_queries, bool) or max_queries < 1:
        raise ValueError(f"max_queries must be an int >= 1, got {max_queries!r}")
    queries: list[str] = []
    for text in texts:
        if not text:
            continue
        for raw in extractor(text):
            query = clean_phrase(raw)
            if query is not None and query not in queries:
                queries.append(query)
                if len(queries) == max_queries:
                    return queries
    return queries
