"""No deprecation notice comes from loclip's own calls into transformers.

transformers announces renames (``past_key_values`` → ``cache``, ``image_hidden_states`` → ``image_outputs``)
as ``FutureWarning``s and as ``logger.warning_once`` notices some releases before it removes the old names.
This test runs a forward, a grounding forward, ``generate`` with regions and ``chat``, catches every such
notice together with the stack it was raised on, and fails when the call that triggered it was made by a
loclip frame. Notices that transformers raises about its own internal calls are left alone.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from loclip.finetune.data import ConversationDataset, collate
from loclip.mllm import chat

# Frames of these modules are plumbing between the caller and the notice (decorators, nn.Module.__call__, the
# warnings and logging machinery): the first frame outside them, innermost first, made the deprecated call.
PLUMBING = ("transformers.", "torch.", "functools", "contextlib", "warnings", "logging", "peft.", "accelerate.")
DEPRECATION = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)


def caller_module(stack: list[inspect.FrameInfo]) -> str:
    """Module name of the innermost frame that is not plumbing (``stack`` as ``inspect.stack()``: innermost first)."""
    for info in stack:
        name = info.frame.f_globals.get("__name__", "")
        if name != __name__ and not name.startswith(PLUMBING) and name not in PLUMBING:
            return name
    return ""


@contextmanager
def loclip_deprecations() -> Iterator[list[str]]:
    """Collect ``"module: message"`` for every deprecation notice whose caller is a loclip module."""
    found: list[str] = []

    def record(message: str) -> None:
        caller = caller_module(inspect.stack()[2:])
        if caller.startswith("loclip."):
            found.append(f"{caller}: {message}")

    def show(message, category, *args, **kwargs) -> None:
        if issubclass(category, DEPRECATION):
            record(str(message))

    class Handler(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            if "deprecat" in rec.getMessage().lower():
                record(rec.getMessage())

    logger, handler = logging.getLogger("transformers"), Handler(logging.WARNING)
    logging.Logger.warning_once.cache_clear()  # notices already given once in this process are given again
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show  # called synchronously inside warn(), so the stack is the warner's
            yield found
    finally:
        logger.removeHandler(handler)


def test_the_detector_catches_a_deprecated_call_made_here_by_loclip(monkeypatch) -> None:
    # A loclip-module function that warns on behalf of its caller, as transformers' deprecate_kwarg does
    # (stacklevel 2): the detector must blame the loclip module, not transformers.
    import loclip.mllm.modeling as modeling

    code = compile("def call(f):\n    return f()\n", modeling.__file__, "exec")
    scope = {"__name__": "loclip.mllm.modeling"}
    exec(code, scope)

    def deprecated() -> None:
        warnings.warn("`old` is deprecated", FutureWarning, stacklevel=2)

    with loclip_deprecations() as found:
        scope["call"](deprecated)
        deprecated()  # called from this test module: not loclip's
    assert len(found) == 1 and found[0].startswith("loclip.mllm.modeling:")


@torch.no_grad()
def test_forward_generate_and_grounding_raise_no_deprecation_from_loclip(
    tiny, tiny_ground, image, tmp_path: Path
) -> None:
    model, processor = tiny
    ground_model, ground_processor = tiny_ground
    image.save(tmp_path / "a.png")
    record = {
        "image": "a.png",
        "boxes": [[10, 10, 30, 30]],
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is in <region>? Where is it?"},
            {"from": "gpt", "value": "a red square at [100, 200, 300, 400]"},
        ],
    }
    with loclip_deprecations() as found:
        inputs = processor(images=image, text="<image> what is in <region>", boxes=[[[10, 10, 30, 30]]])
        out = model(**inputs)
        assert out.logits.shape[0] == 1
        model.generate(**inputs, max_new_tokens=3, do_sample=False)
        model.generate(**inputs, max_new_tokens=3, do_sample=False, use_cache=False)
        chat(model, processor, image, "What is in <region>?", boxes=[[10, 10, 30, 30]], max_new_tokens=3)
        dataset = ConversationDataset([record], ground_processor, tmp_path, box_answers="ground")
        batch = collate([dataset[0]], ground_processor.tokenizer.pad_token_id)
        ground_out = ground_model(**batch)
        assert torch.isfinite(ground_out.loss)
        chat(ground_model, ground_processor, image, "Where is the red square?", max_new_tokens=3)
    assert not found, "deprecated transformers API called from loclip:\n" + "\n".join(found)


def test_grounding_output_keeps_the_parents_fields(tiny_ground, image, tmp_path: Path) -> None:
    """The grounding output is built from Llava's own output: every field the parent class declares is there
    under the parent's name (a rename upstream cannot break it)."""
    from transformers.models.llava.modeling_llava import LlavaCausalLMOutputWithPast

    from loclip.mllm.modeling import LoclipLlavaCausalLMOutput

    model, processor = tiny_ground
    image.save(tmp_path / "a.png")
    record = {
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhere is it?"},
            {"from": "gpt", "value": "[100, 200, 300, 400]"},
        ],
    }
    dataset = ConversationDataset([record], processor, tmp_path, box_answers="ground")
    batch = collate([dataset[0]], processor.tokenizer.pad_token_id)
    out = model(**batch, use_cache=True)
    assert isinstance(out, LoclipLlavaCausalLMOutput)
    parent = set(LlavaCausalLMOutputWithPast.__dataclass_fields__)
    assert parent <= set(out.__dataclass_fields__)
    present = {name for name, value in out.items()}
    # the cache and the image features come through under whatever name this transformers gives them
    assert any("cache" in name or "past" in name for name in present & parent), present
    assert any("image" in name for name in present & parent), present


def test_forward_advertises_the_installed_parents_parameters_and_its_own(tiny) -> None:
    """generate() reads forward's signature (attention_mask, position_ids, logits_to_keep): ours lists the
    installed Llava's parameters, whatever their names, plus boxes and the ground targets."""
    from transformers import LlavaForConditionalGeneration, LlavaModel

    from loclip.mllm.signatures import extends

    model, _ = tiny
    for ours, parent in (
        (model.forward, LlavaForConditionalGeneration.forward),
        (model.model.forward, LlavaModel.forward),
    ):
        names = list(inspect.signature(ours).parameters)
        expected = [
            n for n in inspect.signature(parent).parameters if n not in ("self", "kwargs", "mm_encoder_outputs")
        ]
        assert names[: len(expected)] == expected and "boxes" in names and names[-1] == "kwargs"
    assert {"ground_boxes", "ground_mask"} <= set(inspect.signature(model.forward).parameters)

    def parent(self, a=None, b=None, **kwargs): ...

    with pytest.raises(TypeError, match=r"positional parameters \['self', 'b'\]"):
        extends(parent)(lambda self, b=None, **kwargs: None)
