"""The one module that owns the conversation format: LLaVA JSON turns → prompt text → ids and labels.

Two templates:
- ``"plain"``: ``<bos>USER: {question} ASSISTANT: {answer}<eos> USER: …`` — for stage 1 and for tokenizers
  without a chat template.
- ``"chat"``: the tokenizer's own chat template (``apply_chat_template``), cut into per-message pieces.

A conversation becomes a list of ``Segment``s; each is tokenized on its own and the pieces are concatenated,
so a generation prompt is token for token a prefix of the training sequence. Labels are -100 everywhere but
the assistant's segments (its answer and the token(s) that end its turn). ``<image>`` is expanded to the
number of image tokens here, after tokenization, so no tokenizer ever sees hundreds of placeholders.

Text a user typed may hold no special token (``check_user_text``): a typed ``<|im_start|>``, ``ASSISTANT:`` or
``<eos>`` would otherwise be read as the format's own markers, and a typed ``<image>`` or ``<ground>`` would ask
for image features or boxes nobody gave. Only ``<region>`` (in a question) and the first question's ``<image>``
are the user's to write, one box per ``<region>`` (``check_region_count``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tokenizers import AddedToken

from loclip.core.messages import shown
from loclip.encoder.box_text import boxes_to_placeholder

IMAGE_TOKEN = "<image>"
REGION_TOKEN = "<region>"
GROUND_TOKEN = "<ground>"  # box_answers="ground": stands for a box the encoder's grounding head draws
PLAIN_USER = "USER:"
PLAIN_ASSISTANT = "ASSISTANT:"
IGNORE_INDEX = -100
_ROLES = {"human": "user", "gpt": "assistant"}

Template = Literal["auto", "plain", "chat"]


@dataclass(frozen=True)
class Segment:
    """A piece of the rendered conversation; ``target`` pieces are what the model learns to write."""

    text: str
    target: bool


def to_messages(conversations: list[dict[str, Any]], where: str = "conversations") -> list[dict[str, str]]:
    """LLaVA turns (``from``: human/gpt, ``value``) → chat messages (``role``: user/assistant, ``content``).

    Turns must alternate human, gpt, human, … ; ``ValueError`` names the turn otherwise.
    """
    if not isinstance(conversations, list) or not conversations:
        raise ValueError(f"{where} must be a non-empty list of turns, got {shown(conversations)}")
    messages = []
    for i, turn in enumerate(conversations):
        speaker = turn.get("from") if isinstance(turn, dict) else None
        role = _ROLES.get(speaker) if isinstance(speaker, str) else None  # any JSON value may sit there
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected or not isinstance(turn.get("value"), str):
            raise ValueError(
                f"{where}[{i}] must be a {'human' if expected == 'user' else 'gpt'} turn with a string 'value', "
                f"got {shown(turn)}"
            )
        messages.append({"role": role, "content": turn["value"]})
    return messages


def resolve_template(tokenizer: Any, template: Template) -> Literal["plain", "chat"]:
    """``"auto"`` → ``"chat"`` when the tokenizer has a chat template, else ``"plain"``."""
    if template not in ("auto", "plain", "chat"):
        raise ValueError(f"template must be 'auto', 'plain' or 'chat', got {template!r}")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise ValueError("template='chat' but the tokenizer has no chat_template; use 'plain'")
    return "chat" if template == "chat" or (template == "auto" and has_chat) else "plain"


def segments(
    tokenizer: Any, messages: list[dict[str, str]], template: Template = "auto", add_generation_prompt: bool = False
) -> list[Segment]:
    """Render messages as segments. With ``add_generation_prompt`` the messages end with a user turn and the
    last segment ends where the assistant's answer starts."""
    if resolve_template(tokenizer, template) == "plain":
        return _plain_segments(messages)
    return _chat_segments(tokenizer, messages, add_generation_prompt)


def _plain_segments(messages: list[dict[str, str]]) -> list[Segment]:
    out = []
    for i, m in enumerate(messages):
        if m["role"] == "user":
            out.append(Segment(f"{' ' if i else ''}{PLAIN_USER} {m['content']} {PLAIN_ASSISTANT}", False))
        else:
            out.append(Segment(f" {m['content']}", True))
    return out


def _chat_segments(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[Segment]:
    out, previous = [], ""
    for i, m in enumerate(messages):
        is_user = m["role"] == "user"
        text = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False, add_generation_prompt=is_user)
        if not text.startswith(previous):
            raise ValueError(
                f"the tokenizer's chat template is not prefix-stable at message {i} (rendering more messages "
                "changes earlier text), so the answer spans cannot be found; use template='plain'"
            )
        piece, eos = text[len(previous) :], tokenizer.eos_token
        if not is_user and eos and eos in piece:  # what the template writes after the end token is layout
            cut = piece.rindex(eos) + len(eos)
            out += [Segment(piece[:cut], target=True)] + ([Segment(piece[cut:], target=False)] if piece[cut:] else [])
        else:
            out.append(Segment(piece, target=not is_user))
        previous = text
    return out


def encode_segments(
    tokenizer: Any, parts: list[Segment], num_image_tokens: int, template: Template = "auto"
) -> tuple[list[int], list[int]]:
    """Segments → (input_ids, labels), each a list of ints of the same length.

    Plain template: ``<bos>`` first (if the tokenizer has one) and ``<eos>`` after every answer (as a target).
    """
    plain = resolve_template(tokenizer, template) == "plain"
    image_id = token_id(tokenizer, IMAGE_TOKEN)
    ids: list[int] = [tokenizer.bos_token_id] if plain and tokenizer.bos_token_id is not None else []
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    for seg in parts:
        piece: list[int] = []
        for k, text in enumerate(seg.text.split(IMAGE_TOKEN)):
            if k:
                piece += [image_id] * num_image_tokens
            if text:
                piece += tokenizer(text, add_special_tokens=False)["input_ids"]
        if plain and seg.target:
            piece.append(tokenizer.eos_token_id)
        ids += piece
        labels += piece if seg.target else [IGNORE_INDEX] * len(piece)
    return ids, labels


def encode_conversation(
    tokenizer: Any, conversations: list[dict[str, Any]], num_image_tokens: int, template: Template = "auto"
) -> tuple[list[int], list[int]]:
    """A LLaVA record's ``conversations`` → (input_ids, labels) for training."""
    messages = to_messages(conversations)
    if messages[-1]["role"] != "assistant":
        raise ValueError("conversations must end with a gpt turn for training")
    return encode_segments(tokenizer, segments(tokenizer, messages, template), num_image_tokens, template)


def ground_answers(conversations: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """For ``box_answers="ground"``: every box text in the gpt turns becomes one ``<ground>`` token.

    Returns the new turns and the boxes they held (normalised model-frame xyxy, in order of appearance),
    the targets of the grounding head. Human turns are left as they are.
    """
    turns, found = [], []
    for turn in conversations:
        if isinstance(turn, dict) and turn.get("from") == "gpt" and isinstance(turn.get("value"), str):
            value, boxes = boxes_to_placeholder(turn["value"], GROUND_TOKEN)
            turn, found = {**turn, "value": value}, found + boxes
        turns.append(turn)
    return turns, found


def encode_prompt(
    tokenizer: Any, messages: list[dict[str, str]], num_image_tokens: int, template: Template = "auto"
) -> list[int]:
    """Messages ending with a user turn → the prompt ids the assistant's answer continues."""
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("a generation prompt must end with a user message")
    parts = segments(tokenizer, messages, template, add_generation_prompt=True)
    return encode_segments(tokenizer, parts, num_image_tokens, template)[0]


def special_texts(tokenizer: Any, template: Template = "auto") -> set[str]:
    """Every text the conversation format reads as a marker: its placeholders (``<image>``, ``<region>``,
    ``<ground>``, whether this tokenizer has them or not), the tokenizer's special tokens (bos, eos, pad, every
    added special token such as ``<|im_start|>``) and, for the plain template, its role markers. ``<unk>`` is left
    out: unknown words become it anyway, typed or not."""
    texts = {IMAGE_TOKEN, REGION_TOKEN, GROUND_TOKEN, *tokenizer.all_special_tokens}
    texts |= {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    if resolve_template(tokenizer, template) == "plain":
        texts |= {PLAIN_USER, PLAIN_ASSISTANT}
    texts.discard(tokenizer.unk_token)
    return {t for t in texts if t}


def check_user_text(
    tokenizer: Any, text: str, where: str, template: Template = "auto", allowed: tuple[str, ...] = ()
) -> None:
    """Refuse user ``text`` that holds a special token other than ``allowed`` (e.g. ``<region>`` in a question):
    ``ValueError`` naming ``where``, the token and the text. Both the text itself and what the tokenizer makes
    of it are checked (a normalising tokenizer may read a special token in text that does not spell it)."""
    if not isinstance(text, str):
        raise TypeError(f"{where} must be a string, got {type(text).__name__}")
    forbidden = special_texts(tokenizer, template) - set(allowed)
    found = sorted(t for t in forbidden if t in text)
    if not found:
        ids = set(tokenizer(text, add_special_tokens=False)["input_ids"])
        found = [t for t in tokenizer.convert_ids_to_tokens(sorted(ids)) if t in forbidden]
    if found:
        raise ValueError(
            f"{where} contains {found[0]!r}, which the conversation format reserves (a special token "
            f"or role marker): remove it; {where} = {shown(text)}"
        )


def region_count_problem(placeholders: int, boxes: int, where: str, token: str = REGION_TOKEN) -> str | None:
    """The rule that each ``token`` placeholder (``<region>``, or ``<ground>`` in a training answer) stands for one
    box, in order: a message naming ``where`` and both counts when ``placeholders`` and ``boxes`` disagree, else
    ``None``. Every check of the rule calls it (the chat prompt, the processor, the model, the dataset)."""
    if placeholders == boxes:
        return None
    return f"{where} has {placeholders} {token} placeholders but {boxes} boxes: give one box per {token}, in order"


def check_region_count(placeholders: int, boxes: int, where: str, token: str = REGION_TOKEN) -> None:
    """``ValueError`` with ``region_count_problem``'s message when the counts disagree."""
    problem = region_count_problem(placeholders, boxes, where, token)
    if problem is not None:
        raise ValueError(problem)


def token_id(tokenizer: Any, token: str) -> int:
    """The id of a token that must be one unit of the vocabulary (``ValueError`` if it is missing)."""
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no single token for {token!r} (got ids {ids}); call ensure_tokens()")
    return ids[0]


def ensure_tokens(tokenizer: Any, template: Template = "auto", ground: bool = False) -> int:
    """Add ``<image>``, ``<region>`` (``<ground>`` with ``ground``; and, for the plain template, role markers
    the tokenizer would turn into ``<unk>``) as special tokens; give it a pad token. Returns how many tokens
    were added (resize the LLM's embeddings when > 0)."""
    wanted = [IMAGE_TOKEN, REGION_TOKEN] + ([GROUND_TOKEN] if ground else [])
    if resolve_template(tokenizer, template) == "plain":
        wanted += [PLAIN_USER, PLAIN_ASSISTANT]
    placeholders = (IMAGE_TOKEN, REGION_TOKEN, GROUND_TOKEN)
    missing = [t for t in wanted if not _is_single_token(tokenizer, t, strict=t in placeholders)]
    added = tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return added


def _is_single_token(tokenizer: Any, text: str, strict: bool) -> bool:
    """Placeholders must be one token; role markers only need to avoid ``<unk>``."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        return False
    return len(ids) == 1 if strict else bool(ids)
