"""A word-level tokenizer for the world's language, built with ``tokenizers`` (nothing downloaded).

Its vocabulary is closed: special tokens, punctuation, the box-text numbers 0..999 and every word
``language.vocabulary()`` lists, so nothing the world says becomes ``<unk>``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from loclip.encoder.boxes import NUM_BINS

from .language import vocabulary

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<image>", "<region>")
PUNCTUATION: tuple[str, ...] = ("[", "]", ",", ".", "?")


def build_tokenizer(model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """The world's tokenizer; ``save_pretrained(dir)`` makes it loadable by ``AutoTokenizer``.

    Its vocabulary: ``SPECIAL_TOKENS``, punctuation, the box-text numbers and the world's words, in that order.
    """
    words = [*PUNCTUATION, *(str(i) for i in range(NUM_BINS)), *vocabulary()]
    return word_tokenizer(words, SPECIAL_TOKENS, model_max_length)


def word_tokenizer(
    words: Sequence[str], specials: Sequence[str] = SPECIAL_TOKENS, model_max_length: int = 256
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``specials`` then ``words`` (ids in that order, duplicates dropped); the one
    builder of the world's tokenizer and of the small ones tests make.

    Lower-cases, splits on spaces and isolates punctuation (``"[12,"`` → ``[``, ``12``, ``,``), and wraps
    every sequence as ``<bos> … <eos>`` (CLIP pools on the first eos). ``specials`` must start with
    ``<pad>, <unk>, <bos>, <eos>``; ``<image>`` and ``<region>``, when listed, become its image and region tokens.
    """
    if tuple(specials[:4]) != SPECIAL_TOKENS[:4]:
        raise ValueError(f"specials must start with {list(SPECIAL_TOKENS[:4])}, got {list(specials[:4])}")
    vocab = {word: i for i, word in enumerate(dict.fromkeys([*specials, *words]))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>",
        pair="<bos> $A <eos> $B <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])],
    )
    roles = {"image_token": "<image>", "region_token": "<region>"}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=model_max_length,
        extra_special_tokens={role: token for role, token in roles.items() if token in specials},
    )
