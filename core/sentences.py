"""Sentence splitting for DreamLIP sub-captions: regex rules, no model, and nothing is ever dropped.

Every non-blank piece of the input but list markers ends up in exactly one sentence (the official DreamLIP
code discards some sentences; this splitter never does). Rules:

- newlines always end a sentence, with or without punctuation;
- ``!`` / ``?`` followed by whitespace end a sentence;
- ``.`` followed by whitespace ends a sentence, except after an abbreviation that always precedes more
  text ("Mr.", "e.g.", "i.e.", "Dr.", "vs.", …); after one that may also end a sentence ("etc.", "a.m.",
  "U.S.", "No.", …) and after an ellipsis ("..." or "…") it ends one only if the next word is capitalised;
- a period not followed by whitespace (decimals "2.5", "e.g" inside "e.g.,") never ends a sentence;
- closing quotes/brackets right after the punctuation stay with the sentence they close;
- the last piece is a sentence even without final punctuation;
- list markers are not sentences and not part of one: "1." / "2)" / "(3)" / "a)" / "(b)" and the bullets
  "-", "*", "•", "–" at the start of a sentence or line are removed, and so is a number marker that ends a
  piece after ":", ";" or "," ("The image shows: 1. a red circle, 2. a blue star." gives "The image
  shows:", "a red circle,", "a blue star."), since MLLM-written long captions often come as lists.
"""

from __future__ import annotations

import re

# Abbreviations (lower case, without the final period) that are never the end of a sentence.
_NEVER_END = frozenset(
    "mr mrs ms mx dr prof rev gen col capt lt sgt st mt ft vs v e.g i.e cf viz approx ca fig figs eq resp".split()
)
# Abbreviations that may end a sentence: split only when the next word is capitalised.
_MAYBE_END = frozenset("etc al no nos inc ltd co corp jr sr a.m p.m".split())
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # u.s, u.s.a, e.u: initialisms, treated like _MAYBE_END
_CANDIDATE = re.compile(r"([.!?…]+)([\"'”’)\]]*)\s+")  # punctuation, closers, then the whitespace it needs
_OPENERS = "\"'“‘([{"
_LINES = re.compile(r"[\r\n]+")
# A list marker opening a sentence: "1." "12)" "(3)" "a)" "(b)" or a bullet, then whitespace or the end.
_LEADING_MARKER = re.compile(r"^(?:\(?\d{1,3}[.)]|\(?[a-zA-Z]\)|\(\d{1,3}\)|[-*•‣◦–—·])(?=\s|$)\s*")
_TRAILING_MARKER = re.compile(r"(?<=[:;,])\s+\(?\d{1,3}[.)]$")  # "shows: 1." → "shows:"


def split_sentences(text: str) -> list[str]:
    """``text`` → its sentences, stripped, in order; blank input gives ``[]``.

    Removing all whitespace from the output's concatenation gives the input without whitespace.
    """
    if not isinstance(text, str):
        raise TypeError(f"split_sentences expects a str, got {type(text).__name__}")
    sentences: list[str] = []
    for line in _LINES.split(text):
        start = 0
        for match in _CANDIDATE.finditer(line):
            if _ends_sentence(line, match):
                sentences.append(line[start : match.end()].strip())
                start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in map(_without_markers, sentences) if s]


def _without_markers(sentence: str) -> str:
    """``sentence`` without the list markers it starts (or, after ``:;,``, ends) with."""
    sentence = _TRAILING_MARKER.sub("", sentence)
    while (match := _LEADING_MARKER.match(sentence)) is not None and match.end() > 0:
        sentence = sentence[match.end() :]
    return sentence.strip()


def _ends_sentence(line: str, match: re.Match[str]) -> bool:
    punct = match.group(1)
    following = line[match.end() :].lstrip(_OPENERS)
    capitalised = following[:1].isupper()
    if "!" in punct or "?" in punct:
        return True
    if punct != ".":  # "..", "...", "…": a pause as often as an end
        return capitalised
    word = line[: match.start()].rsplit(None, 1)[-1] if line[: match.start()].strip() else ""
    word = word.lstrip(_OPENERS).lower()
    if word in _NEVER_END:
        return False
    if word in _MAYBE_END or _DOTTED.fullmatch(word):
        return capitalised
    return True
