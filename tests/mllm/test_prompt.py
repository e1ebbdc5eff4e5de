"""``ChatPrompt``: the question ``chat`` asks, checked once, when built; ``chat`` takes it and checks nothing again."""

from __future__ import annotations

import pytest
import torch

from loclip.mllm import ChatPrompt, Turn
from loclip.mllm.chat import Turn as TurnFromChat
from loclip.mllm.chat import chat


def test_build_checks_each_rule_once_naming_the_field(tiny) -> None:
    _, processor = tiny
    size = (50, 80)  # (height, width)
    ok = ChatPrompt.build(processor, size, "Is <region> left of <region>?", [[1, 2, 10, 20], [-1, 0, 81, 50.5]])
    assert ok.boxes == ((1.0, 2.0, 10.0, 20.0), (0.0, 0.0, 80.0, 50.0))  # within 1 px of the edge: clipped
    assert ok.size == size and ok.history == ()
    cases = [
        (("What is <region>?", []), r"^question has 1 <region> placeholders but 0 boxes: give one box per <region>"),
        (("What?", [[1, 2, 3, 4]]), r"^question has 0 <region> placeholders but 1 boxes"),
        (
            ("What is <region>?", [[0, 0, 82, 10]]),
            r"^boxes\[0\] = \[0.0, 0.0, 82.0, 10.0\] reaches more than 1 px "
            r"outside the 80x50 \(width x height\) image$",
        ),
        (("What is <region>?", [[5, 5, 1, 9]]), r"^boxes\[0\] = \[5.0, 5.0, 1.0, 9.0\] has x2 < x1"),
        (("What is <region>?", [[1, 2, float("nan"), 4]]), r"^boxes\[0\] must be four finite numbers"),
        (("Hi ASSISTANT: yes", []), r"^question contains 'ASSISTANT:'"),
    ]
    for (question, boxes), message in cases:
        with pytest.raises(ValueError, match=message):
            ChatPrompt.build(processor, size, question, boxes)
    history = [Turn("What is <region>?", "a ring", [[0, 0, 90, 9]])]
    with pytest.raises(ValueError, match=r"^history\[0\].boxes\[0\] = \[0.0, 0.0, 90.0, 9.0\] reaches more than"):
        ChatPrompt.build(processor, size, "And?", [], history)
    with pytest.raises(ValueError, match=r"^history\[0\].question has 0 <region> placeholders but 1 boxes"):
        ChatPrompt.build(processor, size, "And?", [], [Turn("What?", "a ring", [[1, 1, 5, 5]])])


def test_chat_takes_a_built_prompt_and_checks_nothing_again(tiny, image, monkeypatch) -> None:
    model, processor = tiny
    size = (image.height, image.width)
    prompt = ChatPrompt.build(
        processor, size, "And <region>?", [[40, 10, 70, 45]], [Turn("What is in <region>?", "a ring", [[4, 5, 30, 40]])]
    )
    built: list = []
    monkeypatch.setattr(ChatPrompt, "build", classmethod(lambda cls, *a, **k: built.append(a)))
    torch.manual_seed(0)
    answer = chat(model, processor, image, prompt, max_new_tokens=3)
    monkeypatch.undo()
    torch.manual_seed(0)
    assert answer == chat(
        model,
        processor,
        image,
        "And <region>?",
        [[40, 10, 70, 45]],
        max_new_tokens=3,
        history=[Turn("What is in <region>?", "a ring", [[4, 5, 30, 40]])],
    )
    assert built == []
    with pytest.raises(ValueError, match="a ChatPrompt holds its boxes and history"):
        chat(model, processor, image, prompt, [[1, 2, 3, 4]])
    other = ChatPrompt.build(processor, (10, 10), "What?")
    with pytest.raises(
        ValueError,
        match=r"built for an image of \(height, width\) = \(10, 10\), but this image is "
        r"\(50, 80\)",
    ):
        chat(model, processor, image, other)
    assert TurnFromChat is Turn  # the old import path of Turn still works
