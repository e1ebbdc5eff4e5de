"""Sentence splitting, the sub-caption pool and the seeded K/M draws (no I/O)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from loclip.pretrain.data import (
    DataConfig,
    Region,
    Sample,
    choose,
    prepare,
    sample_rng,
    split_sentences,
    subcaption_pool,
)

SPLITS = [
    ("A dog runs. It is brown! Is it happy? Yes", ["A dog runs.", "It is brown!", "Is it happy?", "Yes"]),
    (
        "There are pets, e.g. cats and dogs. Mr. Smith owns them.",
        ["There are pets, e.g. cats and dogs.", "Mr. Smith owns them."],
    ),
    ("The pole is 2.5 m tall. The sign reads 3.14.", ["The pole is 2.5 m tall.", "The sign reads 3.14."]),
    ("He waited... and waited... Then he left.", ["He waited... and waited...", "Then he left."]),
    ("line one\nline two. line three\r\n\n", ["line one", "line two.", "line three"]),
    ("Fruit, etc. are on it. Also bread, etc. The end", ["Fruit, etc. are on it.", "Also bread, etc.", "The end"]),
    ('She said "Hi." Then she left', ['She said "Hi."', "Then she left"]),
    (
        "A flag of the U.S. The flag is red. It flies at 5 p.m. daily.",
        ["A flag of the U.S.", "The flag is red.", "It flies at 5 p.m. daily."],
    ),
    ("Wait…What? (It is a cat.) And a dog", ["Wait…What?", "(It is a cat.)", "And a dog"]),
    ("a small red circle, i.e. a dot", ["a small red circle, i.e. a dot"]),
    ("   \n ", []),
]


LISTS = [  # MLLM-written long captions come as lists: markers are neither sentences nor part of one
    ("1. A cat. 2. A dog.", ["A cat.", "A dog."], "1.2."),
    ("- a red circle\n- a blue star", ["a red circle", "a blue star"], "--"),
    ("* one\n• two.\n– three", ["one", "two.", "three"], "*•–"),
    (
        "The image shows: 1. a red circle, 2. a blue star.",
        ["The image shows:", "a red circle,", "a blue star."],
        "1.2.",
    ),
    ("(a) first. (b) second. 3) third", ["first.", "second.", "third"], "(a)(b)3)"),
    ("He was number 1. Then he left.", ["He was number 1.", "Then he left."], ""),  # not a list
]


@pytest.mark.parametrize("text, expected, markers", LISTS)
def test_split_sentences_drops_list_markers_only(text: str, expected: list[str], markers: str) -> None:
    sentences = split_sentences(text)
    assert sentences == expected
    assert len(re.sub(r"\s", "", "".join(sentences))) == len(re.sub(r"\s", "", text)) - len(markers)


@pytest.mark.parametrize("text, expected", SPLITS)
def test_split_sentences(text: str, expected: list[str]) -> None:
    sentences = split_sentences(text)
    assert sentences == expected
    # nothing is dropped: the non-space characters are all there, in order
    assert re.sub(r"\s", "", "".join(sentences)) == re.sub(r"\s", "", text)


def test_split_sentences_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="str"):
        split_sentences(["a. b."])  # type: ignore[arg-type]


def make_sample(key: str = "k0", regions: int = 3) -> Sample:
    return Sample(
        key=key,
        image=Image.new("RGB", (8, 8)),
        caption="raw caption",
        long_captions=["First long. Second long! Third", "raw caption. Another one."],
        short_captions=["short one", "short two"],
        regions=[Region((0.0, 0.0, float(i + 1), float(i + 1)), f"thing {i}") for i in range(regions)],
    )


def test_pool_composition_and_switches() -> None:
    sample = make_sample()
    long = ["First long.", "Second long!", "Third", "raw caption.", "Another one."]
    assert subcaption_pool(sample, DataConfig()) == ["raw caption", "short one", "short two", *long]
    assert subcaption_pool(sample, DataConfig(pool_raw_caption=False, pool_short_captions=False)) == long
    assert subcaption_pool(sample, DataConfig(pool_long_sentences=False)) == ["raw caption", "short one", "short two"]
    sample.short_captions = ["raw caption"]  # exact duplicates count once
    assert subcaption_pool(sample, DataConfig(pool_long_sentences=False)) == ["raw caption"]


def test_choose_without_replacement_and_masks() -> None:
    pool = list("abcdefgh")
    picked, mask = choose(pool, 5, np.random.default_rng(0))
    assert len(picked) == 5 == len(set(picked)) and set(picked) <= set(pool) and all(mask)
    picked, mask = choose(pool[:2], 4, np.random.default_rng(0))
    assert sorted(picked) == ["a", "b"] and mask == [True, True, False, False]
    repeated, mask = choose(pool[:2], 5, np.random.default_rng(0), repeat=True)
    assert repeated == (picked * 3)[:5] and all(mask)  # same draw, cycled
    assert choose([], 3, np.random.default_rng(0), repeat=True) == ([], [False] * 3)


def test_draws_are_a_function_of_seed_epoch_key() -> None:
    config = DataConfig(num_subcaptions=3, num_regions=2)
    a, b = prepare(make_sample("k0"), 0, config), prepare(make_sample("k0"), 0, config)
    assert (a.subcaptions, a.boxes, a.phrases) == (b.subcaptions, b.boxes, b.phrases)
    assert len(set(a.subcaptions)) == 3 and a.sub_mask == [True] * 3 and len(set(a.phrases)) == 2

    def subs(key: str = "k0", epoch: int = 0, seed: int = 0) -> tuple[str, ...]:
        return tuple(prepare(make_sample(key), epoch, DataConfig(num_subcaptions=3, seed=seed)).subcaptions)

    variants = {subs(), subs(epoch=1), subs(epoch=2), subs(seed=1), subs(seed=2), subs(key="k1"), subs(key="k2")}
    assert len(variants) > 3  # epoch, seed and key each change the draw (8P3 = 336 possible draws)
    assert np.array_equal(sample_rng(0, 1, "key", 1).random(4), sample_rng(0, 1, "key", 1).random(4))


def test_fewer_than_k_masks_or_repeats() -> None:
    sample = make_sample(regions=1)
    sample.long_captions, sample.short_captions = [], ["short"]
    masked = prepare(sample, 0, DataConfig(num_subcaptions=4, num_regions=3))
    assert sorted(masked.subcaptions[:2]) == ["raw caption", "short"] and masked.subcaptions[2:] == ["", ""]
    assert masked.sub_mask == [True, True, False, False]
    assert len(masked.boxes) == len(masked.phrases) == 1 and masked.has_regions
    repeated = prepare(sample, 0, DataConfig(num_subcaptions=4, fill_mode="repeat"))
    assert repeated.subcaptions == masked.subcaptions[:2] * 2 and all(repeated.sub_mask)
    sample.regions = []
    assert not prepare(sample, 0, DataConfig()).has_regions


@pytest.mark.parametrize("source", ["raw", "short", "long", "long_full", "pool"])
def test_caption_source(source: str) -> None:
    sample = make_sample()
    caption = prepare(sample, 0, DataConfig(caption_source=source)).caption
    allowed = {
        "raw": ["raw caption"],
        "short": sample.short_captions,
        "long": [s for t in sample.long_captions for s in split_sentences(t)],
        "long_full": sample.long_captions,
        "pool": subcaption_pool(sample, DataConfig()),
    }[source]
    assert caption in allowed
    sample.short_captions, sample.long_captions = [], []
    if source in ("short", "long", "long_full"):  # nothing to draw from: the raw caption
        assert prepare(sample, 0, DataConfig(caption_source=source)).caption == "raw caption"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="fill_mode"):
        DataConfig(fill_mode="pad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        DataConfig(batch_size=0)
    with pytest.raises(ValueError, match="train_shards"):
        DataConfig(train_shards=3)  # type: ignore[arg-type]
