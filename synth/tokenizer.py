"""A word-level tokenizer for the world's language, built with ``tokenizers`` (nothing downloaded).

Its vocabulary is closed: special tokens, punctuation, the box-text numbers 0..999 and every word
``language.vocabulary()`` lists, so nothing the world says becomes ``<unk>``.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from loclip.encoder.boxes import NUM_BINS

from .language import vocabulary

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<image>", "<region>")
PUNCTUATION: tuple[str, ...] = ("[", "]", ",", ".", "?")


def build_tokenizer(model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """The world's tokenizer; ``save_pretrained(dir)`` makes it loadable by ``AutoTokenizer``.

    Lower-cases, splits on spaces and isolates punctuation (``"[12,"`` → ``[``, ``12``, ``,``), and
    wraps every sequence as ``<bos> … <eos>`` like the test tokenizer (CLIP pools on the first eos).
    """
    words = [*SPECIAL_TOKENS, *PUNCTUATION, *(str(i) for i in range(NUM_BINS)), *vocabulary()]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
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
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=model_max_length,
        extra_special_tokens={"image_token": "<image>", "region_token": "<region>"},
    )
