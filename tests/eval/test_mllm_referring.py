"""The MLLM's evaluation (``loclip.eval.mllm_referring``): which turns it asks, and `loclip-eval --task mllm` on a
tiny random MLLM saved by the test (mechanics and output schema)."""

import json
from pathlib import Path

import pytest

from loclip.cli.evaluate import main
from loclip.encoder.box_text import parse_boxes
from loclip.eval.mllm_referring import Answered, Question, normalise_phrase, questions, rec_accuracy, referring_accuracy
from loclip.synth import SceneConfig, write_split


def test_questions_take_referring_and_grounding_turns_with_their_own_boxes() -> None:
    turns = [
        ("<image>\nWhat is in <region>?", "a red square"),
        ("Where is the blue star?", "[100, 200, 300, 400]"),
        ("What is in <region>?", "a blue star at [1, 2, 3, 4]"),  # neither: its box is used up all the same
        ("What is in <region>?", "a green ring"),
    ]
    record = {
        "image": "a.png",
        "boxes": [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]],
        "conversations": [
            {"from": who, "value": value} for ask, answer in turns for who, value in (("human", ask), ("gpt", answer))
        ],
    }
    refer = questions([record], "refer")
    assert [(q.question, q.boxes, q.answer) for q in refer] == [
        ("What is in <region>?", [[1, 2, 3, 4]], "a red square"),
        ("What is in <region>?", [[9, 10, 11, 12]], "a green ring"),
    ]
    (ground,) = questions([record], "ground")
    assert (ground.question, ground.boxes, ground.answer) == ("Where is the blue star?", [], None)
    assert ground.truth_box == parse_boxes("[100, 200, 300, 400]")[0]
    with pytest.raises(ValueError, match="kind must be 'refer' or 'ground'"):
        questions([record], "caption")


def test_a_phrase_matches_whatever_its_case_spacing_and_final_punctuation() -> None:
    assert normalise_phrase("  A  Red\tsquare. ") == normalise_phrase("a red square") == "a red square"
    assert normalise_phrase("a red square") != normalise_phrase("a red circle")


def test_the_scores_count_exact_phrases_and_first_boxes_over_the_threshold() -> None:
    def refer(answer: str, truth: str) -> Answered:
        return Answered(Question("a.png", "What is in <region>?", [[1, 2, 3, 4]], truth, None), (50, 100), answer, [])

    assert referring_accuracy([refer("A red square.", "a red square"), refer("a red ring", "a red square")]) == 0.5
    assert referring_accuracy([]) == rec_accuracy([], 64) == 0.0

    # an image of (height, width) = (50, 100) letterboxed into 64 px: the model frame's top half is the image
    truth = Question("a.png", "Where is the star?", [], None, [0.0, 0.0, 0.5, 0.25])  # pixels [0, 0, 50, 25]

    def ground(*boxes: list[float]) -> Answered:
        return Answered(truth, (50, 100), "", list(boxes))

    hit, wide = ground([0, 0, 50, 25], [60, 30, 90, 45]), ground([0, 0, 100, 25])  # IoU 1; IoU 0.5
    miss, none = ground([60, 30, 90, 45], [0, 0, 50, 25]), ground()  # only the first box counts; no box: a miss
    assert rec_accuracy([hit, wide, miss, none], 64) == 0.5
    assert rec_accuracy([hit, wide], 64, iou_threshold=0.6) == 0.5


def test_mllm_task_scores_referring_and_rec(tmp_path: Path) -> None:
    from loclip.encoder import LoclipVisionModel, tiny_config
    from loclip.finetune.builder import compose, make_processor, tiny_llm
    from loclip.mllm.conversation import ensure_tokens
    from loclip.synth import build_tokenizer

    tokenizer = build_tokenizer(model_max_length=1024)
    ensure_tokens(tokenizer, "plain")
    model = compose(
        LoclipVisionModel(tiny_config().vision_config),
        tiny_llm(tokenizer, hidden_size=32, layers=1, heads=4),
        tokenizer,
    )
    model.save_pretrained(tmp_path / "mllm")
    make_processor(model.config, tokenizer, "plain").save_pretrained(tmp_path / "mllm")
    write_split(tmp_path / "world", "val", 3, seed=0, config=SceneConfig(image_size=64, max_objects=2))

    out = tmp_path / "results.json"
    code = main(
        [
            "--model",
            str(tmp_path / "mllm"),
            "--task",
            "mllm",
            "--conversations-json",
            str(tmp_path / "world" / "val" / "conversations.json"),
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    (result,) = json.loads(out.read_text())["results"]
    assert set(result["metrics"]) == {"referring_accuracy", "rec_acc@0.5"}
    assert 0 <= result["metrics"]["referring_accuracy"] <= 1 and result["info"]["num_refer"] > 0


@pytest.mark.parametrize("extra,match", [(["--task", "synthetic"], "cannot be combined"), ([], "conversations")])
def test_mllm_task_bad_arguments(tmp_path: Path, capsys, extra, match) -> None:
    (tmp_path / "config.json").write_text("{}")
    args = ["--model", str(tmp_path), "--task", "mllm", *extra]
    if "synthetic" in extra:
        args += ["--conversations-json", str(tmp_path / "config.json"), "--synth-dir", str(tmp_path)]
    assert main(args) == 2
    assert match in capsys.readouterr().err


def test_a_conversation_file_nested_too_deeply_ends_loclip_eval_with_one_line(tmp_path: Path, capsys) -> None:
    """``json.loads`` of ``[[[[…]]]]`` 10^5 deep raised RecursionError: a traceback from ``--task mllm``."""
    (tmp_path / "config.json").write_text("{}")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["--model", str(tmp_path), "--task", "mllm", "--conversations-json", str(deep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loclip-eval: error: conversations_json: '") and err.count("\n") == 1, err
    assert "deep.json' nests its JSON too deeply to read" in err
