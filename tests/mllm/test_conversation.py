"""The conversation format: token-by-token label masks, prompts as prefixes, chat templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loclip.mllm.conversation import (
    IGNORE_INDEX,
    check_user_text,
    encode_conversation,
    encode_prompt,
    ensure_tokens,
    ground_answers,
    special_texts,
    to_messages,
)
from loclip.synth import build_tokenizer

TWO_TURNS = [
    {"from": "human", "value": "<image>\nWhat is in <region>?"},
    {"from": "gpt", "value": "a small red circle"},
    {"from": "human", "value": "Where is the circle?"},
    {"from": "gpt", "value": "[1, 2, 3, 4]"},
]


def test_label_mask_token_by_token_on_two_turns(tiny) -> None:
    _, processor = tiny
    tok = processor.tokenizer
    ids, labels = encode_conversation(tok, TWO_TURNS, num_image_tokens=3, template="plain")
    expected = [
        ("<bos>", False),
        ("USER:", False),
        *[("<image>", False)] * 3,
        *[(w, False) for w in ("what", "is", "in", "<region>", "?")],
        ("ASSISTANT:", False),
        *[(w, True) for w in ("a", "small", "red", "circle")],
        ("<eos>", True),
        ("USER:", False),
        *[(w, False) for w in ("where", "is", "the", "circle", "?")],
        ("ASSISTANT:", False),
        *[(w, True) for w in ("[", "1", ",", "2", ",", "3", ",", "4", "]")],
        ("<eos>", True),
    ]
    assert tok.convert_ids_to_tokens(ids) == [t for t, _ in expected]
    assert labels == [i if target else IGNORE_INDEX for i, (_, target) in zip(ids, expected)]


def test_generation_prompt_is_a_prefix_of_the_training_ids(tiny) -> None:
    _, processor = tiny
    tok = processor.tokenizer
    ids, labels = encode_conversation(tok, TWO_TURNS, 3, "plain")
    prompt = encode_prompt(tok, to_messages(TWO_TURNS)[:1], 3, "plain")
    assert ids[: len(prompt)] == prompt and labels[len(prompt)] != IGNORE_INDEX


def test_chat_template_labels_cover_the_assistant_pieces_only(tiny) -> None:
    _, processor = tiny
    tok = processor.tokenizer
    tok.chat_template = (
        "{% for m in messages %}{{ '<bos>' if loop.first else '' }} {{ m['role'] }} {{ m['content'] }}"
        "{{ ' <eos>' if m['role'] == 'assistant' else '' }}{% endfor %}"
        "{% if add_generation_prompt %} assistant{% endif %}"
    )
    # the template's role words are not in this closed vocabulary: they become <unk>, which is fine here
    ids, labels = encode_conversation(tok, TWO_TURNS, 2, "chat")
    targets = tok.convert_ids_to_tokens([i for i, label in zip(ids, labels) if label != IGNORE_INDEX])
    assert targets == ["a", "small", "red", "circle", "<eos>", "[", "1", ",", "2", ",", "3", ",", "4", "]", "<eos>"]
    with pytest.raises(ValueError, match="no chat_template"):
        tok.chat_template = None
        encode_conversation(tok, TWO_TURNS, 2, "chat")


def test_turns_must_alternate() -> None:
    with pytest.raises(ValueError, match=r"conversations\[1\] must be a gpt turn"):
        to_messages([{"from": "human", "value": "a"}, {"from": "human", "value": "b"}])
    with pytest.raises(ValueError, match=r"conversations\[0\] must be a human turn"):  # not a TypeError
        to_messages([{"from": ["human"], "value": "a"}])


# ---------------------------------------------------------------------------------------------- fuzzing
FUZZ_TOKENIZER = build_tokenizer(model_max_length=1024)
ensure_tokens(FUZZ_TOKENIZER, "plain", ground=True)
MARKERS = [
    "<image>",
    "<region>",
    "<ground>",
    "USER:",
    "ASSISTANT:",
    "<eos>",
    "<bos>",
    "<pad>",
    "<unk>",
    "<EOS>",
    "[1, 2, 3, 4]",
    "[5,5,5,9]",
    "\x00",
    "red circle",
    " ",
]
fuzz_texts = st.lists(st.sampled_from(MARKERS) | st.text(max_size=6), max_size=8).map("".join)
fuzz_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | fuzz_texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(fuzz_texts, inner, max_size=3),
    max_leaves=12,
)
fuzz_turns = (
    st.lists(
        st.fixed_dictionaries(
            {"from": st.sampled_from(["human", "gpt"]) | fuzz_values, "value": fuzz_texts | fuzz_values}
        )
        | fuzz_values,
        max_size=6,
    )
    | fuzz_values
)


@given(fuzz_turns)
def test_any_conversation_encodes_or_is_refused_with_a_value_error(conversations) -> None:
    try:
        ids, labels = encode_conversation(FUZZ_TOKENIZER, conversations, num_image_tokens=2, template="plain")
    except ValueError as e:
        assert len(str(e)) < 400  # the turn is quoted cut short
        return
    assert len(ids) == len(labels) and all(isinstance(i, int) for i in ids)
    assert any(label != IGNORE_INDEX for label in labels)  # it ends with an answer to learn
    messages = to_messages(conversations)
    prompt = encode_prompt(FUZZ_TOKENIZER, messages[:-1], 2, "plain")
    assert ids[: len(prompt)] == prompt  # a generation prompt is a prefix of the training sequence


@given(fuzz_turns)
def test_ground_answers_never_raise_and_keep_the_turns(conversations) -> None:
    if not isinstance(conversations, list):
        return
    turns, boxes = ground_answers(conversations)
    assert len(turns) == len(conversations) and all(len(b) == 4 for b in boxes)


@given(fuzz_texts)
def test_user_text_that_passes_holds_no_special_token(text) -> None:
    try:
        check_user_text(FUZZ_TOKENIZER, text, "question", "plain", allowed=("<region>",))
    except ValueError as e:
        assert str(e).startswith("question contains ")
        return
    ids = FUZZ_TOKENIZER(text, add_special_tokens=False)["input_ids"]
    reserved = special_texts(FUZZ_TOKENIZER, "plain") - {"<region>"}
    assert not reserved & set(FUZZ_TOKENIZER.convert_ids_to_tokens(ids))
